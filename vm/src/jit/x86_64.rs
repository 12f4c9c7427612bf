//! The x86-64 emitter: one block of the decoded table as a `sysv64` function over
//! [`JitContext`], one method per instruction class.
//!
//! Registers: `rdi` the context, `rsi` the page table, `r8` the step budget; `rax`, `rcx`, `rdx`
//! scratch. The code uses no stack and only caller-saved registers. Every exit goes through
//! [`Emitter::exit`]: it writes the next pc to `pc`, `r8` back to `remaining`, and returns a
//! [`BlockExit`].
//!
//! A block's layout: the budget check (where a jump back to the block's start goes), the
//! instructions in order, the exit after the last one, then out of line the zero results of loads
//! from absent pages, the side exits and the out-of-budget exit.

use super::{BlockExit, JitContext, Text};
use crate::elf::GUARD_PAGE_END;
use crate::instruction::{Instruction, Opcode};
use crate::memory::{PAGE_DATA_OFFSET, PAGE_DIRTY_OFFSET};
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};
use std::cell::Cell;
use std::mem::offset_of;

const REMAINING: i32 = offset_of!(JitContext, remaining) as i32;
const PC: i32 = offset_of!(JitContext, pc) as i32;
const PAGES: i32 = offset_of!(JitContext, pages) as i32;
const DATA: i32 = PAGE_DATA_OFFSET as i32;
const DIRTY: i32 = PAGE_DIRTY_OFFSET as i32;

/// The code of the block `insts` (a whole block, see [`super::block_len`]) at `start_pc`, or
/// `None` if the assembler fails.
pub(super) fn assemble(insts: &[Cell<Instruction>], start_pc: u32, text: Text) -> Option<Vec<u8>> {
    let mut block = Emitter::new(start_pc, insts.len() as u32, text);
    for (k, cell) in insts.iter().enumerate() {
        block.instruction(k as u32, cell.get());
    }
    block.finish()
}

/// Register `r`'s offset in the context.
fn reg(r: u8) -> i32 {
    i32::from(r & 31) * 4
}

/// Register `rd`'s offset in the context, or `None` for x0, whose writes are dropped.
fn dest(rd: u8) -> Option<i32> {
    (rd & 31 != 0).then(|| reg(rd))
}

/// Where an exit continues.
#[derive(Clone, Copy)]
enum Next {
    /// A pc known when compiling.
    At(u32),
    /// The pc computed into `eax`.
    Eax,
}

/// Register-register operations that are one x86 instruction.
#[derive(Clone, Copy)]
enum RegOp {
    Add,
    Sub,
    Xor,
    Or,
    And,
    Mul,
}

/// Register-immediate operations that are one x86 instruction.
#[derive(Clone, Copy)]
enum ImmOp {
    Add,
    Xor,
    Or,
    And,
}

/// Shifts; x86 masks 32-bit shift counts to 5 bits, as RV32 does.
#[derive(Clone, Copy)]
enum Shift {
    Left,
    Logical,
    Arithmetic,
}

/// Branch conditions on `rs1` against `rs2`.
#[derive(Clone, Copy)]
enum Cond {
    Eq,
    Ne,
    Lt,
    Ge,
    Ltu,
    Geu,
}

/// Loads: width and extension.
#[derive(Clone, Copy)]
enum Load {
    I8,
    U8,
    I16,
    U16,
    U32,
}

/// Store widths.
#[derive(Clone, Copy)]
enum Store {
    U8,
    U16,
    U32,
}

/// One block's code as it is being emitted.
struct Emitter {
    ops: VecAssembler<X64Relocation>,
    start_pc: u32,
    /// Instructions in the block.
    len: u32,
    text: Text,
    /// The budget check at the top, where a jump back to `start_pc` goes.
    top: DynamicLabel,
    /// Returns at `start_pc` when the budget cannot cover the whole block.
    out_of_budget: DynamicLabel,
    /// (label, k): returns before instruction k for the interpreter to take it.
    side_exits: Vec<(DynamicLabel, u32)>,
    /// (label, back, rd): a load from a page never written reads zero.
    zero_loads: Vec<(DynamicLabel, DynamicLabel, u8)>,
    /// Whether the last instruction was a jump or branch, which exits by itself.
    ended: bool,
}

impl Emitter {
    /// Starts a block of `len` instructions at `start_pc`: loads the page table and budget, and
    /// takes the whole block's steps from the budget, or exits when it cannot cover them.
    fn new(start_pc: u32, len: u32, text: Text) -> Self {
        let mut ops = VecAssembler::<X64Relocation>::new(0);
        let top = ops.new_dynamic_label();
        let out_of_budget = ops.new_dynamic_label();
        let n = len as i32;
        dynasm!(ops
            ; .arch x64
            ; mov rsi, QWORD [rdi + PAGES]
            ; mov r8, QWORD [rdi + REMAINING]
            ; =>top
            ; cmp r8, n
            ; jb =>out_of_budget
            ; sub r8, n
        );
        Self {
            ops,
            start_pc,
            len,
            text,
            top,
            out_of_budget,
            side_exits: Vec::new(),
            zero_loads: Vec::new(),
            ended: false,
        }
    }

    /// Emits instruction `k` of the block.
    fn instruction(&mut self, k: u32, inst: Instruction) {
        let pc = self.start_pc.wrapping_add(k << 2);
        let Instruction {
            opcode,
            rd,
            rs1,
            rs2,
            imm,
        } = inst;
        match opcode {
            Opcode::Lui => self.constant(rd, imm),
            Opcode::Auipc => self.constant(rd, pc.wrapping_add(imm)),
            Opcode::Jal => {
                self.constant(rd, pc.wrapping_add(4));
                self.jump(pc.wrapping_add(imm));
            }
            Opcode::Jalr => self.jalr(rd, rs1, imm, pc.wrapping_add(4)),
            Opcode::Beq => self.branch(Cond::Eq, rs1, rs2, pc, imm),
            Opcode::Bne => self.branch(Cond::Ne, rs1, rs2, pc, imm),
            Opcode::Blt => self.branch(Cond::Lt, rs1, rs2, pc, imm),
            Opcode::Bge => self.branch(Cond::Ge, rs1, rs2, pc, imm),
            Opcode::Bltu => self.branch(Cond::Ltu, rs1, rs2, pc, imm),
            Opcode::Bgeu => self.branch(Cond::Geu, rs1, rs2, pc, imm),
            Opcode::Lb => self.load(k, Load::I8, rd, rs1, imm),
            Opcode::Lbu => self.load(k, Load::U8, rd, rs1, imm),
            Opcode::Lh => self.load(k, Load::I16, rd, rs1, imm),
            Opcode::Lhu => self.load(k, Load::U16, rd, rs1, imm),
            Opcode::Lw => self.load(k, Load::U32, rd, rs1, imm),
            Opcode::Sb => self.store(k, Store::U8, rs1, rs2, imm),
            Opcode::Sh => self.store(k, Store::U16, rs1, rs2, imm),
            Opcode::Sw => self.store(k, Store::U32, rs1, rs2, imm),
            Opcode::Addi => self.alu_imm(ImmOp::Add, rd, rs1, imm),
            Opcode::Xori => self.alu_imm(ImmOp::Xor, rd, rs1, imm),
            Opcode::Ori => self.alu_imm(ImmOp::Or, rd, rs1, imm),
            Opcode::Andi => self.alu_imm(ImmOp::And, rd, rs1, imm),
            Opcode::Slti => self.set_less_imm(true, rd, rs1, imm),
            Opcode::Sltiu => self.set_less_imm(false, rd, rs1, imm),
            Opcode::Slli => self.shift_imm(Shift::Left, rd, rs1, imm),
            Opcode::Srli => self.shift_imm(Shift::Logical, rd, rs1, imm),
            Opcode::Srai => self.shift_imm(Shift::Arithmetic, rd, rs1, imm),
            Opcode::Add => self.alu_reg(RegOp::Add, rd, rs1, rs2),
            Opcode::Sub => self.alu_reg(RegOp::Sub, rd, rs1, rs2),
            Opcode::Xor => self.alu_reg(RegOp::Xor, rd, rs1, rs2),
            Opcode::Or => self.alu_reg(RegOp::Or, rd, rs1, rs2),
            Opcode::And => self.alu_reg(RegOp::And, rd, rs1, rs2),
            Opcode::Mul => self.alu_reg(RegOp::Mul, rd, rs1, rs2),
            Opcode::Sll => self.shift_reg(Shift::Left, rd, rs1, rs2),
            Opcode::Srl => self.shift_reg(Shift::Logical, rd, rs1, rs2),
            Opcode::Sra => self.shift_reg(Shift::Arithmetic, rd, rs1, rs2),
            Opcode::Slt => self.set_less_reg(true, rd, rs1, rs2),
            Opcode::Sltu => self.set_less_reg(false, rd, rs1, rs2),
            Opcode::Mulh => self.mul_high(true, true, rd, rs1, rs2),
            Opcode::Mulhsu => self.mul_high(true, false, rd, rs1, rs2),
            Opcode::Mulhu => self.mul_high(false, false, rd, rs1, rs2),
            Opcode::Div => self.div_signed(true, rd, rs1, rs2),
            Opcode::Rem => self.div_signed(false, rd, rs1, rs2),
            Opcode::Divu => self.div_unsigned(true, rd, rs1, rs2),
            Opcode::Remu => self.div_unsigned(false, rd, rs1, rs2),
            Opcode::Fence => {}
            Opcode::Ecall | Opcode::Ebreak | Opcode::Illegal => {
                unreachable!("blocks end before instructions without a compiled form")
            }
        }
    }

    /// Returns from the block: `pc` := `next`, the budget written back, and `exit` returned.
    /// Every way out of a block is this sequence.
    fn exit(&mut self, next: Next, exit: BlockExit) {
        match next {
            Next::At(pc) => dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + PC], pc as i32),
            Next::Eax => dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + PC], eax),
        }
        dynasm!(self.ops ; .arch x64 ; mov QWORD [rdi + REMAINING], r8);
        match exit {
            BlockExit::Continue => dynasm!(self.ops ; .arch x64 ; xor eax, eax),
            BlockExit::Interpret => dynasm!(self.ops ; .arch x64 ; mov eax, 1),
        }
        dynasm!(self.ops ; .arch x64 ; ret);
    }

    /// A label, bound out of line, that returns before instruction `k` for the interpreter to
    /// take it.
    fn side_exit(&mut self, k: u32) -> DynamicLabel {
        let label = self.ops.new_dynamic_label();
        self.side_exits.push((label, k));
        label
    }

    /// Continues at the known `target`: back to the top when it is the block's start (an inner
    /// loop stays in compiled code while the budget lasts), else out of the block.
    fn jump(&mut self, target: u32) {
        if target == self.start_pc {
            let top = self.top;
            dynasm!(self.ops ; .arch x64 ; jmp =>top);
        } else {
            self.exit(Next::At(target), BlockExit::Continue);
        }
        self.ended = true;
    }

    /// rd ← `value`, known when compiling (lui, auipc, the link of jal).
    fn constant(&mut self, rd: u8, value: u32) {
        if let Some(rd) = dest(rd) {
            dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + rd], value as i32);
        }
    }

    /// rd ← rs1 `op` imm.
    fn alu_imm(&mut self, op: ImmOp, rd: u8, rs1: u8, imm: u32) {
        let Some(rd) = dest(rd) else { return };
        let imm = imm as i32;
        dynasm!(self.ops ; .arch x64 ; mov eax, DWORD [rdi + reg(rs1)]);
        match op {
            ImmOp::Add => dynasm!(self.ops ; .arch x64 ; add eax, imm),
            ImmOp::Xor => dynasm!(self.ops ; .arch x64 ; xor eax, imm),
            ImmOp::Or => dynasm!(self.ops ; .arch x64 ; or eax, imm),
            ImmOp::And => dynasm!(self.ops ; .arch x64 ; and eax, imm),
        }
        dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + rd], eax);
    }

    /// rd ← rs1 `op` rs2.
    fn alu_reg(&mut self, op: RegOp, rd: u8, rs1: u8, rs2: u8) {
        let Some(rd) = dest(rd) else { return };
        let rs2 = reg(rs2);
        dynasm!(self.ops ; .arch x64 ; mov eax, DWORD [rdi + reg(rs1)]);
        match op {
            RegOp::Add => dynasm!(self.ops ; .arch x64 ; add eax, DWORD [rdi + rs2]),
            RegOp::Sub => dynasm!(self.ops ; .arch x64 ; sub eax, DWORD [rdi + rs2]),
            RegOp::Xor => dynasm!(self.ops ; .arch x64 ; xor eax, DWORD [rdi + rs2]),
            RegOp::Or => dynasm!(self.ops ; .arch x64 ; or eax, DWORD [rdi + rs2]),
            RegOp::And => dynasm!(self.ops ; .arch x64 ; and eax, DWORD [rdi + rs2]),
            RegOp::Mul => dynasm!(self.ops ; .arch x64 ; imul eax, DWORD [rdi + rs2]),
        }
        dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + rd], eax);
    }

    /// rd ← rs1 shifted by the immediate amount.
    fn shift_imm(&mut self, shift: Shift, rd: u8, rs1: u8, imm: u32) {
        let Some(rd) = dest(rd) else { return };
        let amount = (imm & 31) as i8;
        dynasm!(self.ops ; .arch x64 ; mov eax, DWORD [rdi + reg(rs1)]);
        match shift {
            Shift::Left => dynasm!(self.ops ; .arch x64 ; shl eax, amount),
            Shift::Logical => dynasm!(self.ops ; .arch x64 ; shr eax, amount),
            Shift::Arithmetic => dynasm!(self.ops ; .arch x64 ; sar eax, amount),
        }
        dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + rd], eax);
    }

    /// rd ← rs1 shifted by rs2 (x86 takes the low 5 bits of `cl`).
    fn shift_reg(&mut self, shift: Shift, rd: u8, rs1: u8, rs2: u8) {
        let Some(rd) = dest(rd) else { return };
        dynasm!(self.ops
            ; .arch x64
            ; mov ecx, DWORD [rdi + reg(rs2)]
            ; mov eax, DWORD [rdi + reg(rs1)]
        );
        match shift {
            Shift::Left => dynasm!(self.ops ; .arch x64 ; shl eax, cl),
            Shift::Logical => dynasm!(self.ops ; .arch x64 ; shr eax, cl),
            Shift::Arithmetic => dynasm!(self.ops ; .arch x64 ; sar eax, cl),
        }
        dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + rd], eax);
    }

    /// rd ← rs1 < imm, `signed` or unsigned.
    fn set_less_imm(&mut self, signed: bool, rd: u8, rs1: u8, imm: u32) {
        let Some(rd) = dest(rd) else { return };
        dynasm!(self.ops
            ; .arch x64
            ; xor ecx, ecx
            ; cmp DWORD [rdi + reg(rs1)], imm as i32
        );
        self.set_less(signed, rd);
    }

    /// rd ← rs1 < rs2, `signed` or unsigned.
    fn set_less_reg(&mut self, signed: bool, rd: u8, rs1: u8, rs2: u8) {
        let Some(rd) = dest(rd) else { return };
        dynasm!(self.ops
            ; .arch x64
            ; mov eax, DWORD [rdi + reg(rs1)]
            ; xor ecx, ecx
            ; cmp eax, DWORD [rdi + reg(rs2)]
        );
        self.set_less(signed, rd);
    }

    /// Register offset `rd` ← the "below" flag of the compare just emitted, via `ecx` (zeroed
    /// before the compare).
    fn set_less(&mut self, signed: bool, rd: i32) {
        if signed {
            dynasm!(self.ops ; .arch x64 ; setl cl);
        } else {
            dynasm!(self.ops ; .arch x64 ; setb cl);
        }
        dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + rd], ecx);
    }

    /// rd ← the high half of the 64-bit product of rs1 and rs2, each sign- or zero-extended.
    fn mul_high(&mut self, signed1: bool, signed2: bool, rd: u8, rs1: u8, rs2: u8) {
        let Some(rd) = dest(rd) else { return };
        let (rs1, rs2) = (reg(rs1), reg(rs2));
        if signed1 {
            dynasm!(self.ops ; .arch x64 ; movsxd rax, DWORD [rdi + rs1]);
        } else {
            dynasm!(self.ops ; .arch x64 ; mov eax, DWORD [rdi + rs1]);
        }
        if signed2 {
            dynasm!(self.ops ; .arch x64 ; movsxd rcx, DWORD [rdi + rs2]);
        } else {
            dynasm!(self.ops ; .arch x64 ; mov ecx, DWORD [rdi + rs2]);
        }
        dynasm!(self.ops
            ; .arch x64
            ; imul rax, rcx
            ; shr rax, 32
            ; mov DWORD [rdi + rd], eax
        );
    }

    /// rd ← rs1 ÷ rs2 (`quotient`) or rs1 rem rs2, signed: x / 0 = -1, x % 0 = x; x / -1 = -x
    /// (wrapping), x % -1 = 0, where x86 would trap.
    fn div_signed(&mut self, quotient: bool, rd: u8, rs1: u8, rs2: u8) {
        let Some(rd) = dest(rd) else { return };
        dynasm!(self.ops
            ; .arch x64
            ; mov eax, DWORD [rdi + reg(rs1)]
            ; mov ecx, DWORD [rdi + reg(rs2)]
            ; test ecx, ecx
            ; jz >by_zero
            ; cmp ecx, -1
            ; je >by_minus_one
            ; cdq
            ; idiv ecx
            ; jmp >done
            ; by_zero:
            ; mov edx, eax
            ; mov eax, -1
            ; jmp >done
            ; by_minus_one:
            ; neg eax
            ; xor edx, edx
            ; done:
        );
        self.quotient_or_remainder(quotient, rd);
    }

    /// rd ← rs1 ÷ rs2 (`quotient`) or rs1 rem rs2, unsigned: x / 0 = 2^32 - 1, x % 0 = x.
    fn div_unsigned(&mut self, quotient: bool, rd: u8, rs1: u8, rs2: u8) {
        let Some(rd) = dest(rd) else { return };
        dynasm!(self.ops
            ; .arch x64
            ; mov eax, DWORD [rdi + reg(rs1)]
            ; mov ecx, DWORD [rdi + reg(rs2)]
            ; test ecx, ecx
            ; jz >by_zero
            ; xor edx, edx
            ; div ecx
            ; jmp >done
            ; by_zero:
            ; mov edx, eax
            ; mov eax, -1
            ; done:
        );
        self.quotient_or_remainder(quotient, rd);
    }

    /// Register offset `rd` ← the quotient (`eax`) or the remainder (`edx`).
    fn quotient_or_remainder(&mut self, quotient: bool, rd: i32) {
        if quotient {
            dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + rd], eax);
        } else {
            dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + rd], edx);
        }
    }

    /// The checked address rs1 + imm: its offset in the page in `eax` and the page in `rdx`.
    /// Jumps to `fail` below the guard page's end or when misaligned for `width`, and to
    /// `absent` when the page does not exist.
    fn address(&mut self, width: u32, rs1: u8, imm: u32, fail: DynamicLabel, absent: DynamicLabel) {
        dynasm!(self.ops
            ; .arch x64
            ; mov eax, DWORD [rdi + reg(rs1)]
            ; add eax, imm as i32
            ; cmp eax, GUARD_PAGE_END as i32
            ; jb =>fail
        );
        if width > 1 {
            dynasm!(self.ops ; .arch x64 ; test eax, (width - 1) as i32 ; jnz =>fail);
        }
        dynasm!(self.ops
            ; .arch x64
            ; mov edx, eax
            ; shr edx, 12
            ; mov rdx, QWORD [rsi + rdx * 8]
            ; test rdx, rdx
            ; jz =>absent
            ; and eax, 0xfff
        );
    }

    /// Instruction `k`: rd ← memory at rs1 + imm. Faults go to the interpreter; a page that does
    /// not exist reads zero.
    fn load(&mut self, k: u32, load: Load, rd: u8, rs1: u8, imm: u32) {
        let fail = self.side_exit(k);
        let absent = self.ops.new_dynamic_label();
        let back = self.ops.new_dynamic_label();
        let width = match load {
            Load::I8 | Load::U8 => 1,
            Load::I16 | Load::U16 => 2,
            Load::U32 => 4,
        };
        self.address(width, rs1, imm, fail, absent);
        match load {
            Load::I8 => dynasm!(self.ops ; .arch x64 ; movsx ecx, BYTE [rdx + rax + DATA]),
            Load::U8 => dynasm!(self.ops ; .arch x64 ; movzx ecx, BYTE [rdx + rax + DATA]),
            Load::I16 => dynasm!(self.ops ; .arch x64 ; movsx ecx, WORD [rdx + rax + DATA]),
            Load::U16 => dynasm!(self.ops ; .arch x64 ; movzx ecx, WORD [rdx + rax + DATA]),
            Load::U32 => dynasm!(self.ops ; .arch x64 ; mov ecx, DWORD [rdx + rax + DATA]),
        }
        if let Some(rd) = dest(rd) {
            dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + rd], ecx);
        }
        dynasm!(self.ops ; .arch x64 ; =>back);
        self.zero_loads.push((absent, back, rd));
    }

    /// Instruction `k`: memory at rs1 + imm ← rs2. Faults, stores into the text and stores to a
    /// page that is absent or not dirty go to the interpreter.
    fn store(&mut self, k: u32, store: Store, rs1: u8, rs2: u8, imm: u32) {
        let fail = self.side_exit(k);
        let Text { base, bytes } = self.text;
        if bytes > 0 {
            dynasm!(self.ops
                ; .arch x64
                ; mov eax, DWORD [rdi + reg(rs1)]
                ; add eax, imm as i32
                ; sub eax, base as i32
                ; cmp eax, bytes as i32
                ; jb =>fail
            );
        }
        let width = match store {
            Store::U8 => 1,
            Store::U16 => 2,
            Store::U32 => 4,
        };
        self.address(width, rs1, imm, fail, fail);
        dynasm!(self.ops
            ; .arch x64
            ; cmp BYTE [rdx + DIRTY], 0
            ; je =>fail
            ; mov ecx, DWORD [rdi + reg(rs2)]
        );
        match store {
            Store::U8 => dynasm!(self.ops ; .arch x64 ; mov BYTE [rdx + rax + DATA], cl),
            Store::U16 => dynasm!(self.ops ; .arch x64 ; mov WORD [rdx + rax + DATA], cx),
            Store::U32 => dynasm!(self.ops ; .arch x64 ; mov DWORD [rdx + rax + DATA], ecx),
        }
    }

    /// The branch at `pc`: to `pc + imm` when rs1 `cond` rs2, else to `pc + 4`.
    fn branch(&mut self, cond: Cond, rs1: u8, rs2: u8, pc: u32, imm: u32) {
        let taken = self.ops.new_dynamic_label();
        dynasm!(self.ops
            ; .arch x64
            ; mov eax, DWORD [rdi + reg(rs1)]
            ; cmp eax, DWORD [rdi + reg(rs2)]
        );
        match cond {
            Cond::Eq => dynasm!(self.ops ; .arch x64 ; je =>taken),
            Cond::Ne => dynasm!(self.ops ; .arch x64 ; jne =>taken),
            Cond::Lt => dynasm!(self.ops ; .arch x64 ; jl =>taken),
            Cond::Ge => dynasm!(self.ops ; .arch x64 ; jge =>taken),
            Cond::Ltu => dynasm!(self.ops ; .arch x64 ; jb =>taken),
            Cond::Geu => dynasm!(self.ops ; .arch x64 ; jae =>taken),
        }
        self.exit(Next::At(pc.wrapping_add(4)), BlockExit::Continue);
        dynasm!(self.ops ; .arch x64 ; =>taken);
        self.jump(pc.wrapping_add(imm));
    }

    /// rd ← `link`; pc ← (rs1 + imm) & !1, known only when running.
    fn jalr(&mut self, rd: u8, rs1: u8, imm: u32, link: u32) {
        dynasm!(self.ops
            ; .arch x64
            ; mov eax, DWORD [rdi + reg(rs1)]
            ; add eax, imm as i32
            ; and eax, -2
        );
        self.constant(rd, link);
        self.exit(Next::Eax, BlockExit::Continue);
        self.ended = true;
    }

    /// Ends the block: the exit after its last instruction (unless that was a jump or branch),
    /// then the out-of-line code.
    fn finish(mut self) -> Option<Vec<u8>> {
        if !self.ended {
            let next = self.start_pc.wrapping_add(self.len << 2);
            self.exit(Next::At(next), BlockExit::Continue);
        }
        for (label, back, rd) in std::mem::take(&mut self.zero_loads) {
            dynasm!(self.ops ; .arch x64 ; =>label);
            if let Some(rd) = dest(rd) {
                dynasm!(self.ops ; .arch x64 ; mov DWORD [rdi + rd], 0);
            }
            dynasm!(self.ops ; .arch x64 ; jmp =>back);
        }
        for (label, k) in std::mem::take(&mut self.side_exits) {
            // The steps from instruction k on were taken from the budget at the top.
            let refund = (self.len - k) as i32;
            dynasm!(self.ops ; .arch x64 ; =>label ; add r8, refund);
            let pc = self.start_pc.wrapping_add(k << 2);
            self.exit(Next::At(pc), BlockExit::Interpret);
        }
        let out_of_budget = self.out_of_budget;
        dynasm!(self.ops ; .arch x64 ; =>out_of_budget);
        self.exit(Next::At(self.start_pc), BlockExit::Continue);
        self.ops.finalize().ok()
    }
}
