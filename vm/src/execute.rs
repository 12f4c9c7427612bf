//! The semantics of RV32IM, written once (`docs/protocol.md` section 3).
//!
//! [`execute`] runs one decoded instruction against registers and a [`Bus`]. The fast interpreter and
//! the witness-producing path are two drivers over this one function: they differ only in the bus
//! (the proving bus records a proof of each leaf before it touches it).

use crate::elf::GUARD_PAGE_END;
use crate::instruction::{Instruction, Opcode};
use crate::state::Fault;

/// Ecall numbers (in `a7`).
pub mod ecall {
    /// Linux `write(fd, buf, len)`.
    pub const WRITE: u32 = 64;
    /// Linux `exit(code)`.
    pub const EXIT: u32 = 93;
    /// Linux `exit_group(code)`, same as `exit`.
    pub const EXIT_GROUP: u32 = 94;
    /// opml `read_chunk(slot, index, dest)`.
    pub const READ_CHUNK: u32 = 0x1_0000;
    /// opml `write_chunk(src)`.
    pub const WRITE_CHUNK: u32 = 0x1_0001;
}

/// Register numbers of the ABI names used by ecalls.
const A0: usize = 10;
const A1: usize = 11;
const A2: usize = 12;
const A7: usize = 17;
/// Linux's "bad file descriptor", returned by `write` to fds other than 1 and 2.
const EBADF: u32 = -9i32 as u32;

/// Program counter and registers; x0 reads as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Cpu {
    pub(crate) pc: u32,
    pub(crate) regs: [u32; 32],
}

#[inline(always)]
fn get(regs: &[u32; 32], r: u8) -> u32 {
    regs[(r & 31) as usize]
}

#[inline(always)]
fn set(regs: &mut [u32; 32], r: u8, value: u32) {
    regs[(r & 31) as usize] = value;
    regs[0] = 0;
}

/// Why execution stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// `exit(code)`.
    Exit(u32),
    /// A fault; nothing else changed.
    Fault(Fault),
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Self {
        Stop::Fault(f)
    }
}

/// Memory, inputs, output and console as one instruction sees them. Addresses passed in are
/// already checked for alignment and the guard page.
pub(crate) trait Bus {
    /// Reads `N` aligned bytes.
    fn load<const N: usize>(&mut self, addr: u32) -> [u8; N];
    /// Writes `N` aligned bytes.
    fn store<const N: usize>(&mut self, addr: u32, bytes: [u8; N]);
    /// Copies chunk `index` of input slot `slot` to the 32-byte aligned `dest`.
    fn read_chunk(&mut self, slot: u32, index: u32, dest: u32) -> Result<(), Fault>;
    /// Appends the 32 bytes at aligned `src` to the output.
    fn write_chunk(&mut self, src: u32) -> Result<(), Fault>;
    /// Sends `len` bytes at `buf` to stdout (fd 1) or stderr (fd 2); not committed.
    fn write_console(&mut self, fd: u32, buf: u32, len: u32);
}

/// The fetch checks: `pc` is word-aligned and outside the guard page.
#[inline(always)]
pub(crate) fn check_fetch(pc: u32) -> Result<(), Fault> {
    if pc & 3 != 0 {
        Err(Fault::MisalignedFetch)
    } else if pc < GUARD_PAGE_END {
        Err(Fault::UnmappedAccess)
    } else {
        Ok(())
    }
}

/// The load/store checks: aligned to `width`, outside the guard page.
#[inline(always)]
fn check_access(addr: u32, width: u32) -> Result<(), Fault> {
    if addr & (width - 1) != 0 {
        Err(Fault::MisalignedAccess)
    } else if addr < GUARD_PAGE_END {
        Err(Fault::UnmappedAccess)
    } else {
        Ok(())
    }
}

/// Executes `inst`, fetched at `pc`, and returns the next pc. On `Err`, the registers and memory are
/// unchanged. The pc travels by value so that the interpreter loop keeps it in a register.
#[inline(always)]
pub(crate) fn execute<B: Bus>(
    regs: &mut [u32; 32],
    pc: u32,
    bus: &mut B,
    inst: Instruction,
) -> Result<u32, Stop> {
    let a = get(regs, inst.rs1);
    let b = get(regs, inst.rs2);
    let imm = inst.imm;
    let mut next = pc.wrapping_add(4);
    let branch = |taken: bool| {
        if taken {
            pc.wrapping_add(imm)
        } else {
            pc.wrapping_add(4)
        }
    };
    match inst.opcode {
        Opcode::Lui => set(regs, inst.rd, imm),
        Opcode::Auipc => set(regs, inst.rd, pc.wrapping_add(imm)),
        Opcode::Jal => {
            set(regs, inst.rd, next);
            next = pc.wrapping_add(imm);
        }
        Opcode::Jalr => {
            set(regs, inst.rd, next);
            next = a.wrapping_add(imm) & !1;
        }
        Opcode::Beq => next = branch(a == b),
        Opcode::Bne => next = branch(a != b),
        Opcode::Blt => next = branch((a as i32) < (b as i32)),
        Opcode::Bge => next = branch((a as i32) >= (b as i32)),
        Opcode::Bltu => next = branch(a < b),
        Opcode::Bgeu => next = branch(a >= b),
        Opcode::Lb => {
            let [v] = load_store::<1>(a, imm).map(|addr| bus.load(addr))?;
            set(regs, inst.rd, v as i8 as u32);
        }
        Opcode::Lbu => {
            let [v] = load_store::<1>(a, imm).map(|addr| bus.load(addr))?;
            set(regs, inst.rd, u32::from(v));
        }
        Opcode::Lh => {
            let v = load_store::<2>(a, imm).map(|addr| bus.load(addr))?;
            set(regs, inst.rd, i16::from_le_bytes(v) as u32);
        }
        Opcode::Lhu => {
            let v = load_store::<2>(a, imm).map(|addr| bus.load(addr))?;
            set(regs, inst.rd, u32::from(u16::from_le_bytes(v)));
        }
        Opcode::Lw => {
            let v = load_store::<4>(a, imm).map(|addr| bus.load(addr))?;
            set(regs, inst.rd, u32::from_le_bytes(v));
        }
        Opcode::Sb => bus.store(load_store::<1>(a, imm)?, [b as u8]),
        Opcode::Sh => bus.store(load_store::<2>(a, imm)?, (b as u16).to_le_bytes()),
        Opcode::Sw => bus.store(load_store::<4>(a, imm)?, b.to_le_bytes()),
        Opcode::Addi => set(regs, inst.rd, a.wrapping_add(imm)),
        Opcode::Slti => set(regs, inst.rd, u32::from((a as i32) < (imm as i32))),
        Opcode::Sltiu => set(regs, inst.rd, u32::from(a < imm)),
        Opcode::Xori => set(regs, inst.rd, a ^ imm),
        Opcode::Ori => set(regs, inst.rd, a | imm),
        Opcode::Andi => set(regs, inst.rd, a & imm),
        Opcode::Slli => set(regs, inst.rd, a << (imm & 31)),
        Opcode::Srli => set(regs, inst.rd, a >> (imm & 31)),
        Opcode::Srai => set(regs, inst.rd, ((a as i32) >> (imm & 31)) as u32),
        Opcode::Add => set(regs, inst.rd, a.wrapping_add(b)),
        Opcode::Sub => set(regs, inst.rd, a.wrapping_sub(b)),
        Opcode::Sll => set(regs, inst.rd, a << (b & 31)),
        Opcode::Slt => set(regs, inst.rd, u32::from((a as i32) < (b as i32))),
        Opcode::Sltu => set(regs, inst.rd, u32::from(a < b)),
        Opcode::Xor => set(regs, inst.rd, a ^ b),
        Opcode::Srl => set(regs, inst.rd, a >> (b & 31)),
        Opcode::Sra => set(regs, inst.rd, ((a as i32) >> (b & 31)) as u32),
        Opcode::Or => set(regs, inst.rd, a | b),
        Opcode::And => set(regs, inst.rd, a & b),
        Opcode::Mul => set(regs, inst.rd, a.wrapping_mul(b)),
        Opcode::Mulh => set(
            regs,
            inst.rd,
            ((i64::from(a as i32) * i64::from(b as i32)) >> 32) as u32,
        ),
        Opcode::Mulhsu => set(
            regs,
            inst.rd,
            ((i64::from(a as i32) * i64::from(b)) >> 32) as u32,
        ),
        Opcode::Mulhu => set(regs, inst.rd, ((u64::from(a) * u64::from(b)) >> 32) as u32),
        Opcode::Div => set(regs, inst.rd, div(a, b)),
        Opcode::Divu => set(regs, inst.rd, a.checked_div(b).unwrap_or(u32::MAX)),
        Opcode::Rem => set(regs, inst.rd, rem(a, b)),
        Opcode::Remu => set(regs, inst.rd, a.checked_rem(b).unwrap_or(a)),
        Opcode::Fence => {}
        Opcode::Ecall => return execute_ecall(regs, pc, bus),
        Opcode::Ebreak => return Err(Fault::Breakpoint.into()),
        Opcode::Illegal => return Err(Fault::IllegalInstruction.into()),
    }
    Ok(next)
}

/// The effective address `base + offset`, checked for an `N`-byte access.
#[inline(always)]
fn load_store<const N: usize>(base: u32, offset: u32) -> Result<u32, Fault> {
    let addr = base.wrapping_add(offset);
    check_access(addr, N as u32)?;
    Ok(addr)
}

/// Signed division rounding toward zero; `x / 0 = −1`, `INT_MIN / −1 = INT_MIN`.
#[inline(always)]
fn div(a: u32, b: u32) -> u32 {
    if b == 0 {
        u32::MAX
    } else {
        (a as i32).wrapping_div(b as i32) as u32
    }
}

/// Signed remainder; `x % 0 = x`, `INT_MIN % −1 = 0`.
#[inline(always)]
fn rem(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        (a as i32).wrapping_rem(b as i32) as u32
    }
}

/// The ecall table (`docs/protocol.md` 3.3).
fn execute_ecall<B: Bus>(regs: &mut [u32; 32], pc: u32, bus: &mut B) -> Result<u32, Stop> {
    let [a0, a1, a2] = [regs[A0], regs[A1], regs[A2]];
    match regs[A7] {
        ecall::WRITE => {
            let written = if a0 == 1 || a0 == 2 {
                bus.write_console(a0, a1, a2);
                a2
            } else {
                EBADF
            };
            set(regs, A0 as u8, written);
        }
        ecall::EXIT | ecall::EXIT_GROUP => return Err(Stop::Exit(a0)),
        ecall::READ_CHUNK => {
            check_access(a2, 32)?;
            bus.read_chunk(a0, a1, a2)?;
        }
        ecall::WRITE_CHUNK => {
            check_access(a0, 32)?;
            bus.write_chunk(a0)?;
        }
        _ => return Err(Fault::UnknownEcall.into()),
    }
    Ok(pc.wrapping_add(4))
}
