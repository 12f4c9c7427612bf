//! The block compiler of the fast interpreter: hot straight runs of the pre-decoded table become
//! x86-64 code that reads and writes the same registers and pages as [`crate::execute`].
//!
//! It is only ever a faster way to take steps that [`crate::execute`] defines. A compiled block
//! covers instructions `start .. start + len` of the table, up to and including the first jump or
//! branch. Whenever an instruction cannot finish on its fast path — a fault, a store to a page that
//! is absent or not yet dirty, a store into the decoded text, an ecall — the block returns before
//! it ("side exit") with the exact pc and step budget, and the interpreter takes that step. So the
//! compiled code never allocates, never faults, never touches the Merkle bookkeeping, and every
//! state it leaves is one the interpreter would have reached after the same number of steps.
//!
//! Blocks are compiled once their start has been dispatched [`HOT`] times, and thrown away whenever
//! a store re-decodes a word of the text. A block that jumps back to its own start (an inner loop)
//! loops in compiled code while the step budget lasts.

use crate::instruction::{Instruction, Opcode};
use std::cell::Cell;

/// What compiled code reads and writes; `repr(C)` for its fixed offsets.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct JitContext {
    /// x0..x31; x0 is never written.
    pub(crate) regs: [u32; 32],
    /// The memory's page table ([`crate::memory::Memory::page_table_ptr`]).
    pub(crate) pages: *mut u8,
    /// Steps left in the budget; compiled code counts it down.
    pub(crate) remaining: u64,
    /// Where execution continues when a block returns.
    pub(crate) pc: u32,
}

impl JitContext {
    /// A context holding `regs`, with no page table yet.
    pub(crate) fn new(regs: [u32; 32]) -> Self {
        Self {
            regs,
            pages: std::ptr::null_mut(),
            remaining: 0,
            pc: 0,
        }
    }
}

/// Dispatches of a block start before it is compiled: blocks run once or twice (start-up code)
/// are not worth the compile.
pub(crate) const HOT: u32 = 16;
/// Most instructions in one block.
const MAX_BLOCK: usize = 256;

/// How a compiled block returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockExit {
    /// It ran to a jump, branch or the block's end; continue at `pc`.
    Continue,
    /// The instruction at `pc` needs the interpreter.
    Interpret,
}

/// Whether `opcode` has a compiled form. The others end a block before them.
fn compilable(opcode: Opcode) -> bool {
    !matches!(opcode, Opcode::Ecall | Opcode::Ebreak | Opcode::Illegal)
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x64::Jit;

#[cfg(not(target_arch = "x86_64"))]
pub(crate) use portable::Jit;

/// Hosts without a code generator: every step is interpreted.
#[cfg(not(target_arch = "x86_64"))]
mod portable {
    use super::*;

    /// Compiles nothing.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct Jit;

    /// A compiled block (never made here).
    pub(crate) struct Block {
        pub(crate) len: u32,
    }

    impl Block {
        pub(crate) unsafe fn run(&self, _ctx: &mut JitContext) -> BlockExit {
            unreachable!("no blocks are compiled on this host")
        }
    }

    impl Jit {
        pub(crate) fn lookup(
            &mut self,
            _index: usize,
            _table: &[Cell<Instruction>],
            _base: u32,
        ) -> Option<&Block> {
            None
        }

        pub(crate) fn flush(&mut self) {}

        pub(crate) fn len(&self) -> usize {
            0
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x64 {
    use super::*;
    use crate::elf::GUARD_PAGE_END;
    use crate::memory::{PAGE_DATA_OFFSET, PAGE_DIRTY_OFFSET};
    use dynasmrt::mmap::{ExecutableBuffer, MutableBuffer};
    use dynasmrt::x64::X64Relocation;
    use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};
    use std::mem::offset_of;

    /// Bytes of executable memory mapped at a time.
    const ARENA_BYTES: usize = 1 << 20;
    /// `state` values at or above this are `COMPILED + block number`.
    const COMPILED: u32 = 1 << 31;
    /// `state` of a start whose first instruction has no compiled form.
    const NEVER: u32 = COMPILED - 1;

    const REMAINING: i32 = offset_of!(JitContext, remaining) as i32;
    const PC: i32 = offset_of!(JitContext, pc) as i32;
    const PAGES: i32 = offset_of!(JitContext, pages) as i32;
    const DATA: i32 = PAGE_DATA_OFFSET as i32;
    const DIRTY: i32 = PAGE_DIRTY_OFFSET as i32;

    /// Compiled code: `extern "sysv64" fn(&mut JitContext) -> u32` (0 continue, 1 interpret).
    type BlockFn = unsafe extern "sysv64" fn(*mut JitContext) -> u32;

    /// A compiled block.
    pub(crate) struct Block {
        entry: BlockFn,
        /// Instructions in the block: the steps it takes when it runs to its end.
        pub(crate) len: u32,
    }

    impl Block {
        /// Runs the block from `ctx.pc`, which is its start.
        ///
        /// # Safety
        /// `ctx.pages` is the page table of the memory these steps act on, taken from a `&mut`
        /// borrow that nothing else uses until this returns, and `ctx.remaining >= self.len`.
        pub(crate) unsafe fn run(&self, ctx: &mut JitContext) -> BlockExit {
            // SAFETY: `entry` points at code emitted by `compile` for this ABI into a mapping that
            // `Jit` keeps executable for as long as the block exists. The code uses only
            // caller-saved registers and no stack, reads `ctx` and the registers in it, reads
            // page pointers from the table and bytes of pages at offsets below `PAGE_SIZE`, and
            // writes only registers x1..x31, `ctx.pc`, `ctx.remaining` and bytes of pages that
            // exist and are marked dirty: the caller's contract makes all of those exclusive.
            match unsafe { (self.entry)(ctx) } {
                0 => BlockExit::Continue,
                _ => BlockExit::Interpret,
            }
        }
    }

    /// Executable memory, mapped `ARENA_BYTES` at a time and never unmapped while blocks in it
    /// may run.
    #[derive(Default)]
    struct CodeArena {
        full: Vec<ExecutableBuffer>,
        current: ExecutableBuffer,
        used: usize,
    }

    impl CodeArena {
        /// Copies `code` into executable memory and returns where it starts.
        fn place(&mut self, code: &[u8]) -> std::io::Result<*const u8> {
            if code.len() > ARENA_BYTES {
                return Err(std::io::Error::other("block larger than an arena"));
            }
            let mut buffer = if self.current.size() == 0 || self.used + code.len() > ARENA_BYTES {
                let fresh = MutableBuffer::new(ARENA_BYTES)?;
                let old = std::mem::take(&mut self.current);
                if old.size() != 0 {
                    self.full.push(old);
                }
                self.used = 0;
                fresh
            } else {
                std::mem::take(&mut self.current).make_mut()?
            };
            let start = self.used;
            buffer.set_len(start + code.len());
            buffer[start..].copy_from_slice(code);
            self.used += code.len();
            // Remapping changes protection, not the address: blocks placed earlier stay valid.
            self.current = buffer.make_exec()?;
            Ok(self.current.as_ptr().wrapping_add(start))
        }
    }

    /// The compiled blocks of one machine's text.
    #[derive(Default)]
    pub(crate) struct Jit {
        /// Per table index: dispatches so far (below `HOT`), `NEVER`, or `COMPILED + block`.
        state: Vec<u32>,
        blocks: Vec<Block>,
        arena: CodeArena,
    }

    /// A clone (a checkpoint of the machine) starts with no compiled blocks.
    impl Clone for Jit {
        fn clone(&self) -> Self {
            Self::default()
        }
    }

    impl std::fmt::Debug for Jit {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Jit {{ blocks: {} }}", self.blocks.len())
        }
    }

    impl Jit {
        /// The compiled block starting at table `index`, compiling it once it is hot.
        #[inline(always)]
        pub(crate) fn lookup(
            &mut self,
            index: usize,
            table: &[Cell<Instruction>],
            base: u32,
        ) -> Option<&Block> {
            if self.state.len() != table.len() {
                self.state = vec![0; table.len()];
            }
            let state = self.state[index];
            if state >= COMPILED {
                return self.blocks.get((state - COMPILED) as usize);
            }
            if state == NEVER {
                return None;
            }
            if state + 1 < HOT {
                self.state[index] = state + 1;
                return None;
            }
            self.compile(index, table, base)
        }

        #[cold]
        fn compile(
            &mut self,
            index: usize,
            table: &[Cell<Instruction>],
            base: u32,
        ) -> Option<&Block> {
            let code_bytes = (table.len() as u32) << 2;
            let block = assemble(
                &table[index..],
                base.wrapping_add((index as u32) << 2),
                base,
                code_bytes,
            )
            .and_then(|(code, len)| {
                let entry = self.arena.place(&code).ok()?;
                // SAFETY: `entry` is the start of the code just emitted for the `BlockFn` ABI.
                let entry = unsafe { std::mem::transmute::<*const u8, BlockFn>(entry) };
                Some(Block { entry, len })
            });
            match block {
                Some(block) => {
                    self.state[index] = COMPILED + self.blocks.len() as u32;
                    self.blocks.push(block);
                    self.blocks.last()
                }
                None => {
                    self.state[index] = NEVER;
                    None
                }
            }
        }

        /// Blocks compiled and not thrown away.
        pub(crate) fn len(&self) -> usize {
            self.blocks.len()
        }

        /// Forgets every block, after the text changed. No block may be running.
        pub(crate) fn flush(&mut self) {
            self.state.clear();
            self.blocks.clear();
            self.arena = CodeArena::default();
        }
    }

    /// Register `r`'s offset in the context.
    fn reg(r: u8) -> i32 {
        i32::from(r & 31) * 4
    }

    /// Emits the block starting at `insts[0]`, at `start_pc`; returns its code and length, or
    /// `None` when the first instruction has no compiled form. `code_base .. code_base +
    /// code_bytes` is the decoded text, which compiled stores leave to the interpreter.
    ///
    /// Registers: `rdi` the context, `rsi` the page table, `r8` the step budget; `rax`, `rcx`,
    /// `rdx` scratch. Every exit writes `r8` back to `remaining` and the next pc to `pc`.
    fn assemble(
        insts: &[Cell<Instruction>],
        start_pc: u32,
        code_base: u32,
        code_bytes: u32,
    ) -> Option<(Vec<u8>, u32)> {
        let len = insts
            .iter()
            .take(MAX_BLOCK)
            .position(|c| !compilable(c.get().opcode) || c.get().opcode.is_control_transfer())
            .map_or(insts.len().min(MAX_BLOCK), |i| {
                i + usize::from(compilable(insts[i].get().opcode))
            });
        if len == 0 {
            return None;
        }
        let mut ops = VecAssembler::<X64Relocation>::new(0);
        let top = ops.new_dynamic_label();
        let out_of_budget = ops.new_dynamic_label();
        // (label, k): return before instruction k for the interpreter.
        let mut side_exits: Vec<(DynamicLabel, u32)> = Vec::new();
        // (label, back, rd): a load from a page never written reads zero.
        let mut zero_loads: Vec<(DynamicLabel, DynamicLabel, u8)> = Vec::new();
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
        let mut ended = false;
        for (k, cell) in insts[..len].iter().enumerate() {
            let inst = cell.get();
            let pc = start_pc.wrapping_add((k as u32) << 2);
            let (rd, rs1, rs2, imm) = (reg(inst.rd), reg(inst.rs1), reg(inst.rs2), inst.imm as i32);
            let write = inst.rd & 31 != 0;
            // A label that returns before this instruction, for the interpreter to take it.
            macro_rules! side_exit {
                () => {{
                    let label = ops.new_dynamic_label();
                    side_exits.push((label, k as u32));
                    label
                }};
            }
            // Emits `ret` with `pc` := the 32-bit constant `$target`.
            macro_rules! exit_to {
                ($target:expr) => {
                    dynasm!(ops
                        ; .arch x64
                        ; mov DWORD [rdi + PC], $target as i32
                        ; mov QWORD [rdi + REMAINING], r8
                        ; xor eax, eax
                        ; ret
                    )
                };
            }
            // A jump to a known target: back to the top when it is this block's start.
            macro_rules! jump_to {
                ($target:expr) => {{
                    let target: u32 = $target;
                    if target == start_pc {
                        dynasm!(ops ; .arch x64 ; jmp =>top);
                    } else {
                        exit_to!(target);
                    }
                }};
            }
            macro_rules! alu_imm {
                ($op:ident) => {
                    if write {
                        dynasm!(ops
                            ; .arch x64
                            ; mov eax, DWORD [rdi + rs1]
                            ; $op eax, imm
                            ; mov DWORD [rdi + rd], eax
                        );
                    }
                };
            }
            macro_rules! alu_reg {
                ($op:ident) => {
                    if write {
                        dynasm!(ops
                            ; .arch x64
                            ; mov eax, DWORD [rdi + rs1]
                            ; $op eax, DWORD [rdi + rs2]
                            ; mov DWORD [rdi + rd], eax
                        );
                    }
                };
            }
            macro_rules! shift_imm {
                ($op:ident) => {
                    if write {
                        dynasm!(ops
                            ; .arch x64
                            ; mov eax, DWORD [rdi + rs1]
                            ; $op eax, (imm & 31) as i8
                            ; mov DWORD [rdi + rd], eax
                        );
                    }
                };
            }
            // x86 masks 32-bit shift counts to 5 bits, as RV32 does.
            macro_rules! shift_reg {
                ($op:ident) => {
                    if write {
                        dynasm!(ops
                            ; .arch x64
                            ; mov ecx, DWORD [rdi + rs2]
                            ; mov eax, DWORD [rdi + rs1]
                            ; $op eax, cl
                            ; mov DWORD [rdi + rd], eax
                        );
                    }
                };
            }
            macro_rules! set_imm {
                ($set:ident) => {
                    if write {
                        dynasm!(ops
                            ; .arch x64
                            ; xor ecx, ecx
                            ; cmp DWORD [rdi + rs1], imm
                            ; $set cl
                            ; mov DWORD [rdi + rd], ecx
                        );
                    }
                };
            }
            macro_rules! set_reg {
                ($set:ident) => {
                    if write {
                        dynasm!(ops
                            ; .arch x64
                            ; mov eax, DWORD [rdi + rs1]
                            ; xor ecx, ecx
                            ; cmp eax, DWORD [rdi + rs2]
                            ; $set cl
                            ; mov DWORD [rdi + rd], ecx
                        );
                    }
                };
            }
            macro_rules! branch {
                ($jcc:ident) => {{
                    let taken = ops.new_dynamic_label();
                    dynasm!(ops
                        ; .arch x64
                        ; mov eax, DWORD [rdi + rs1]
                        ; cmp eax, DWORD [rdi + rs2]
                        ; $jcc =>taken
                    );
                    exit_to!(pc.wrapping_add(4));
                    dynasm!(ops ; .arch x64 ; =>taken);
                    jump_to!(pc.wrapping_add(inst.imm));
                    ended = true;
                }};
            }
            // The checked effective address in eax and its page in rdx; jumps to `fail` for a
            // fault and to `absent` when the page does not exist.
            macro_rules! address {
                ($width:expr, $fail:expr, $absent:expr) => {{
                    dynasm!(ops
                        ; .arch x64
                        ; mov eax, DWORD [rdi + rs1]
                        ; add eax, imm
                        ; cmp eax, GUARD_PAGE_END as i32
                        ; jb =>$fail
                    );
                    if $width > 1 {
                        dynasm!(ops ; .arch x64 ; test eax, ($width - 1) as i32 ; jnz =>$fail);
                    }
                    dynasm!(ops
                        ; .arch x64
                        ; mov edx, eax
                        ; shr edx, 12
                        ; mov rdx, QWORD [rsi + rdx * 8]
                        ; test rdx, rdx
                        ; jz =>$absent
                        ; and eax, 0xfff
                    );
                }};
            }
            macro_rules! load {
                ($width:expr, $mov:ident, $size:ident) => {{
                    let fail = side_exit!();
                    let absent = ops.new_dynamic_label();
                    let back = ops.new_dynamic_label();
                    address!($width, fail, absent);
                    dynasm!(ops
                        ; .arch x64
                        ; $mov ecx, $size [rdx + rax + DATA]
                    );
                    if write {
                        dynasm!(ops ; .arch x64 ; mov DWORD [rdi + rd], ecx);
                    }
                    dynasm!(ops ; .arch x64 ; =>back);
                    zero_loads.push((absent, back, inst.rd));
                }};
            }
            macro_rules! store {
                ($width:expr, $src:ident, $size:ident) => {{
                    let fail = side_exit!();
                    if code_bytes > 0 {
                        // A store into the decoded text goes through the interpreter, which
                        // re-decodes the word and has the blocks thrown away.
                        dynasm!(ops
                            ; .arch x64
                            ; mov eax, DWORD [rdi + rs1]
                            ; add eax, imm
                            ; sub eax, code_base as i32
                            ; cmp eax, code_bytes as i32
                            ; jb =>fail
                        );
                    }
                    address!($width, fail, fail);
                    dynasm!(ops
                        ; .arch x64
                        ; cmp BYTE [rdx + DIRTY], 0
                        ; je =>fail
                        ; mov ecx, DWORD [rdi + rs2]
                        ; mov $size [rdx + rax + DATA], $src
                    );
                }};
            }
            match inst.opcode {
                Opcode::Lui => {
                    if write {
                        dynasm!(ops ; .arch x64 ; mov DWORD [rdi + rd], imm);
                    }
                }
                Opcode::Auipc => {
                    if write {
                        let value = pc.wrapping_add(inst.imm) as i32;
                        dynasm!(ops ; .arch x64 ; mov DWORD [rdi + rd], value);
                    }
                }
                Opcode::Jal => {
                    if write {
                        let link = pc.wrapping_add(4) as i32;
                        dynasm!(ops ; .arch x64 ; mov DWORD [rdi + rd], link);
                    }
                    jump_to!(pc.wrapping_add(inst.imm));
                    ended = true;
                }
                Opcode::Jalr => {
                    dynasm!(ops
                        ; .arch x64
                        ; mov eax, DWORD [rdi + rs1]
                        ; add eax, imm
                        ; and eax, -2
                    );
                    if write {
                        let link = pc.wrapping_add(4) as i32;
                        dynasm!(ops ; .arch x64 ; mov DWORD [rdi + rd], link);
                    }
                    dynasm!(ops
                        ; .arch x64
                        ; mov DWORD [rdi + PC], eax
                        ; mov QWORD [rdi + REMAINING], r8
                        ; xor eax, eax
                        ; ret
                    );
                    ended = true;
                }
                Opcode::Beq => branch!(je),
                Opcode::Bne => branch!(jne),
                Opcode::Blt => branch!(jl),
                Opcode::Bge => branch!(jge),
                Opcode::Bltu => branch!(jb),
                Opcode::Bgeu => branch!(jae),
                Opcode::Lb => load!(1, movsx, BYTE),
                Opcode::Lbu => load!(1, movzx, BYTE),
                Opcode::Lh => load!(2, movsx, WORD),
                Opcode::Lhu => load!(2, movzx, WORD),
                Opcode::Lw => load!(4, mov, DWORD),
                Opcode::Sb => store!(1, cl, BYTE),
                Opcode::Sh => store!(2, cx, WORD),
                Opcode::Sw => store!(4, ecx, DWORD),
                Opcode::Addi => alu_imm!(add),
                Opcode::Xori => alu_imm!(xor),
                Opcode::Ori => alu_imm!(or),
                Opcode::Andi => alu_imm!(and),
                Opcode::Slti => set_imm!(setl),
                Opcode::Sltiu => set_imm!(setb),
                Opcode::Slli => shift_imm!(shl),
                Opcode::Srli => shift_imm!(shr),
                Opcode::Srai => shift_imm!(sar),
                Opcode::Add => alu_reg!(add),
                Opcode::Sub => alu_reg!(sub),
                Opcode::Xor => alu_reg!(xor),
                Opcode::Or => alu_reg!(or),
                Opcode::And => alu_reg!(and),
                Opcode::Sll => shift_reg!(shl),
                Opcode::Srl => shift_reg!(shr),
                Opcode::Sra => shift_reg!(sar),
                Opcode::Slt => set_reg!(setl),
                Opcode::Sltu => set_reg!(setb),
                Opcode::Mul => alu_reg!(imul),
                Opcode::Mulh | Opcode::Mulhsu | Opcode::Mulhu => {
                    if write {
                        // The 64-bit product of the extended operands; its high half.
                        match inst.opcode {
                            Opcode::Mulh | Opcode::Mulhsu => {
                                dynasm!(ops ; .arch x64 ; movsxd rax, DWORD [rdi + rs1])
                            }
                            _ => dynasm!(ops ; .arch x64 ; mov eax, DWORD [rdi + rs1]),
                        }
                        match inst.opcode {
                            Opcode::Mulh => {
                                dynasm!(ops ; .arch x64 ; movsxd rcx, DWORD [rdi + rs2])
                            }
                            _ => dynasm!(ops ; .arch x64 ; mov ecx, DWORD [rdi + rs2]),
                        }
                        dynasm!(ops
                            ; .arch x64
                            ; imul rax, rcx
                            ; shr rax, 32
                            ; mov DWORD [rdi + rd], eax
                        );
                    }
                }
                Opcode::Div | Opcode::Rem => {
                    if write {
                        // x / 0 = -1, x % 0 = x; x / -1 = -x (wrapping), x % -1 = 0.
                        let quotient = inst.opcode == Opcode::Div;
                        dynasm!(ops
                            ; .arch x64
                            ; mov eax, DWORD [rdi + rs1]
                            ; mov ecx, DWORD [rdi + rs2]
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
                        if quotient {
                            dynasm!(ops ; .arch x64 ; mov DWORD [rdi + rd], eax);
                        } else {
                            dynasm!(ops ; .arch x64 ; mov DWORD [rdi + rd], edx);
                        }
                    }
                }
                Opcode::Divu | Opcode::Remu => {
                    if write {
                        let quotient = inst.opcode == Opcode::Divu;
                        dynasm!(ops
                            ; .arch x64
                            ; mov eax, DWORD [rdi + rs1]
                            ; mov ecx, DWORD [rdi + rs2]
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
                        if quotient {
                            dynasm!(ops ; .arch x64 ; mov DWORD [rdi + rd], eax);
                        } else {
                            dynasm!(ops ; .arch x64 ; mov DWORD [rdi + rd], edx);
                        }
                    }
                }
                Opcode::Fence => {}
                Opcode::Ecall | Opcode::Ebreak | Opcode::Illegal => {
                    unreachable!("blocks end before instructions without a compiled form")
                }
            }
        }
        if !ended {
            let next = start_pc.wrapping_add((len as u32) << 2);
            dynasm!(ops
                ; .arch x64
                ; mov DWORD [rdi + PC], next as i32
                ; mov QWORD [rdi + REMAINING], r8
                ; xor eax, eax
                ; ret
            );
        }
        // Out of line: loads from absent pages, side exits, and the budget check's exit.
        for (label, back, rd) in zero_loads {
            dynasm!(ops ; .arch x64 ; =>label);
            if rd & 31 != 0 {
                dynasm!(ops ; .arch x64 ; mov DWORD [rdi + reg(rd)], 0);
            }
            dynasm!(ops ; .arch x64 ; jmp =>back);
        }
        for (label, k) in side_exits {
            let refund = (len as u32 - k) as i32;
            let pc = start_pc.wrapping_add(k << 2) as i32;
            dynasm!(ops
                ; .arch x64
                ; =>label
                ; add r8, refund
                ; mov DWORD [rdi + PC], pc
                ; mov QWORD [rdi + REMAINING], r8
                ; mov eax, 1
                ; ret
            );
        }
        dynasm!(ops
            ; .arch x64
            ; =>out_of_budget
            ; mov DWORD [rdi + PC], start_pc as i32
            ; mov QWORD [rdi + REMAINING], r8
            ; xor eax, eax
            ; ret
        );
        ops.finalize().ok().map(|code| (code, len as u32))
    }
}
