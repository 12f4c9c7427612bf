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
//!
//! The parts: this module holds the block table (which starts are hot, compiled or never
//! compiled), looks blocks up and runs them; `arena.rs` holds the executable memory; `x86_64.rs`
//! emits the code, one method per instruction class. A second host architecture is a sibling of
//! `x86_64.rs` with the same `assemble`; hosts without one interpret every step.
//!
//! # Why hand-emitted x86-64, not a WebAssembly runtime
//!
//! Translating the guest to WebAssembly and running it under wasmtime would give portable native
//! code, but not the machine the fraud proof commits to:
//! - memory is sparse 4 KiB pages under a Merkle tree: a page never written reads zero and does
//!   not exist, and a store must mark its page dirty for the next hash; a flat linear memory has
//!   neither, so every access would need the same page-table check as here anyway;
//! - the step count is committed state, and a bisection game asks for the state at any step: a run
//!   must stop after exactly N instructions, inside a block, with the exact pc (wasmtime's fuel is
//!   checked at function entries and loop headers, not after any instruction);
//! - the text is writable: a store into a code page re-decodes it and throws its blocks away,
//!   which a module compiled once up front cannot follow.
//!
//! So each block here takes its steps from a budget, checks every access against the page table
//! and hands whatever else to the interpreter. A portable backend would emit these same block
//! semantics through Cranelift (aarch64 and others) instead of `dynasm`, behind the same
//! `assemble`.

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
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const MAX_BLOCK: usize = 256;

/// How a compiled block returned; compiled code returns the discriminant.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockExit {
    /// It ran to a jump, branch or the block's end; continue at `pc`.
    Continue = 0,
    /// The instruction at `pc` needs the interpreter.
    Interpret = 1,
}

/// Whether `opcode` has a compiled form. The others end a block before them.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn compilable(opcode: Opcode) -> bool {
    !matches!(opcode, Opcode::Ecall | Opcode::Ebreak | Opcode::Illegal)
}

/// Instructions in the block starting at `insts[0]`: up to and including the first jump or
/// branch, stopping before the first instruction without a compiled form, at most [`MAX_BLOCK`].
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn block_len(insts: &[Cell<Instruction>]) -> usize {
    insts
        .iter()
        .take(MAX_BLOCK)
        .position(|c| !compilable(c.get().opcode) || c.get().opcode.is_control_transfer())
        .map_or(insts.len().min(MAX_BLOCK), |i| {
            i + usize::from(compilable(insts[i].get().opcode))
        })
}

/// The decoded text, `base .. base + bytes`: compiled stores into it go to the interpreter, which
/// re-decodes the word and has the blocks thrown away.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
struct Text {
    base: u32,
    bytes: u32,
}

#[cfg(target_arch = "x86_64")]
mod arena;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "x86_64")]
pub(crate) use compiled::Jit;

#[cfg(not(target_arch = "x86_64"))]
pub(crate) use portable::Jit;

/// The block table over the x86-64 emitter.
#[cfg(target_arch = "x86_64")]
mod compiled {
    use super::arena::CodeArena;
    use super::*;

    /// `state` values at or above this are `COMPILED + block number`.
    const COMPILED: u32 = 1 << 31;
    /// `state` of a start whose block has no compiled form, or of every start once compiling
    /// stopped.
    const NEVER: u32 = COMPILED - 1;

    /// Compiled code: `extern "sysv64" fn(&mut JitContext) -> BlockExit as u32`.
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
            // SAFETY: `entry` points at code emitted by `x86_64::assemble` for this ABI into an
            // arena mapping that `Jit` keeps executable for as long as the block is in its table
            // (an arena error drops every block before anything runs). The code uses only
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

    /// The compiled blocks of one machine's text.
    pub(crate) struct Jit {
        /// Per table index: dispatches so far (below `HOT`), `NEVER`, or `COMPILED + block`.
        state: Vec<u32>,
        blocks: Vec<Block>,
        arena: CodeArena,
        /// False once the arena failed: from then on the interpreter takes every step.
        compiling: bool,
    }

    impl Default for Jit {
        fn default() -> Self {
            Self::with_arena(CodeArena::default())
        }
    }

    /// A clone (a checkpoint of the machine) starts with no compiled blocks.
    impl Clone for Jit {
        fn clone(&self) -> Self {
            Self::default()
        }
    }

    impl std::fmt::Debug for Jit {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "Jit {{ blocks: {}, compiling: {} }}",
                self.blocks.len(),
                self.compiling
            )
        }
    }

    impl Jit {
        /// No blocks yet; code goes into `arena`.
        pub(super) fn with_arena(arena: CodeArena) -> Self {
            Self {
                state: Vec::new(),
                blocks: Vec::new(),
                arena,
                compiling: true,
            }
        }

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

        /// Compiles the block at table `index`, once per start (until the blocks are thrown away).
        #[cold]
        fn compile(
            &mut self,
            index: usize,
            table: &[Cell<Instruction>],
            base: u32,
        ) -> Option<&Block> {
            let insts = &table[index..index + block_len(&table[index..])];
            let text = Text {
                base,
                bytes: (table.len() as u32) << 2,
            };
            let start_pc = base.wrapping_add((index as u32) << 2);
            let code = match insts {
                [] => None,
                _ if !self.compiling => None,
                _ => x86_64::assemble(insts, start_pc, text),
            };
            let Some(code) = code else {
                self.state[index] = NEVER;
                return None;
            };
            let entry = match self.arena.place(&code) {
                Ok(entry) => entry,
                Err(_) => {
                    self.stop_compiling();
                    return None;
                }
            };
            // SAFETY: `entry` is the start of the code just emitted for the `BlockFn` ABI.
            let entry = unsafe { std::mem::transmute::<*const u8, BlockFn>(entry) };
            self.state[index] = COMPILED + self.blocks.len() as u32;
            self.blocks.push(Block {
                entry,
                len: insts.len() as u32,
            });
            self.blocks.last()
        }

        /// After an arena error: the failed mapping may have taken code of earlier blocks with
        /// it, so every block is forgotten before any can run again, and nothing more is
        /// compiled (a host that refuses a protection change once will likely refuse again).
        fn stop_compiling(&mut self) {
            self.blocks.clear();
            self.arena.clear();
            self.state.fill(NEVER);
            self.compiling = false;
        }

        /// Blocks compiled and not thrown away.
        pub(crate) fn len(&self) -> usize {
            self.blocks.len()
        }

        /// Forgets every block, after the text changed. No block may be running.
        pub(crate) fn flush(&mut self) {
            self.state.clear();
            self.blocks.clear();
            self.arena.clear();
        }
    }
}

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

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::arena::{CodeArena, Protect};
    use super::Jit;
    use crate::elf::ElfImage;
    use crate::encode::{b, i, ECALL, OP_IMM};
    use crate::execute::ecall;
    use crate::machine::{Machine, RunOutcome};
    use crate::InputSlots;
    use dynasmrt::mmap::{ExecutableBuffer, MutableBuffer};
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Page protection that fails on call number `at` (from 1; 0 never) and counts every call.
    /// A failing call unmaps the buffer, as a failed `mprotect` through `dynasmrt` does, so a
    /// block left pointing into it would crash the test if it were called.
    struct FailAt {
        at: usize,
        calls: Arc<AtomicUsize>,
    }

    impl FailAt {
        fn fails_now(&self) -> bool {
            self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.at
        }
    }

    impl Protect for FailAt {
        fn writable(&self, buffer: ExecutableBuffer) -> io::Result<MutableBuffer> {
            if self.fails_now() {
                drop(buffer);
                return Err(io::Error::other("injected mprotect failure"));
            }
            buffer.make_mut()
        }

        fn executable(&self, buffer: MutableBuffer) -> io::Result<ExecutableBuffer> {
            if self.fails_now() {
                drop(buffer);
                return Err(io::Error::other("injected mprotect failure"));
            }
            buffer.make_exec()
        }
    }

    /// A loop of two blocks, each compiled on its 16th dispatch, first `top` then `middle`:
    /// `top` takes one protection change (its fresh arena becomes executable), `middle` two
    /// (writable again, executable again). After that the loop runs `top` again.
    fn two_block_loop() -> Machine {
        let code = [
            i(1, 20, 0, 20, OP_IMM),  // top: addi x20, x20, 1
            b(4, 0, 0, 0),            //      beq x0, x0, middle
            i(3, 21, 0, 21, OP_IMM),  // middle: addi x21, x21, 3
            i(-1, 31, 0, 31, OP_IMM), //      addi x31, x31, -1
            b(-16, 0, 31, 1),         //      bne x31, x0, top
            ECALL,                    //      exit
        ];
        let mut m = Machine::new(
            &ElfImage::from_words(0x1_0000, &code, 0x2_0000, &[]),
            InputSlots::default(),
        );
        m.set_register(31, 64);
        m.set_register(17, ecall::EXIT);
        m
    }

    /// Whichever protection change fails, no block of the failed arena runs afterwards (the
    /// failing call unmapped it), the compiler stops for good, and the machine takes the same
    /// steps to the same states as the interpreter.
    #[test]
    fn an_arena_that_fails_to_change_protection_leaves_no_block_behind() {
        // (what, failing call, blocks at the end, protection calls in all)
        let cases: &[(&str, usize, usize, usize)] = &[
            ("nothing fails", 0, 2, 3),
            ("top's fresh arena never becomes executable", 1, 0, 1),
            ("the arena never becomes writable again for middle", 2, 0, 2),
            (
                "the arena never becomes executable again after middle",
                3,
                0,
                3,
            ),
        ];
        for &(what, at, blocks, calls) in cases {
            let mut compiled = two_block_loop();
            let mut interpreted = compiled.clone();
            interpreted.set_block_compiler(false);
            let counter = Arc::new(AtomicUsize::new(0));
            *compiled.jit_mut() = Jit::with_arena(CodeArena::with_protect(Box::new(FailAt {
                at,
                calls: counter.clone(),
            })));
            // 16 iterations of 5 steps compile both blocks; the cuts land inside them after.
            for (n, steps) in [80, 3, 7, 2, 1_000].into_iter().enumerate() {
                let outcome = compiled.run(steps);
                assert_eq!(outcome, interpreted.run(steps), "{what}: stretch {n}");
                assert_eq!(compiled.pc(), interpreted.pc(), "{what}: stretch {n}");
                assert_eq!(
                    compiled.registers(),
                    interpreted.registers(),
                    "{what}: stretch {n}"
                );
                assert_eq!(
                    compiled.state_hash(),
                    interpreted.state_hash(),
                    "{what}: stretch {n}"
                );
            }
            assert_eq!(compiled.outcome(), RunOutcome::Exited(0), "{what}");
            assert_eq!(compiled.registers()[20], 64, "{what}");
            assert_eq!(compiled.registers()[21], 3 * 64, "{what}");
            assert_eq!(compiled.compiled_blocks(), blocks, "{what}: blocks");
            assert_eq!(
                counter.load(Ordering::SeqCst),
                calls,
                "{what}: protection changes (none after a failure)"
            );
        }
    }
}
