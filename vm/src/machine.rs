//! The machine: registers, memory, inputs, output and console, with its two drivers — the fast
//! interpreter ([`Machine::run`]) and the proving path ([`Machine::prove_step`]).

use crate::commitment::{InputSlots, OutputAccumulator, INPUT_SLOTS};
use crate::elf::{ElfImage, STACK_TOP};
use crate::execute::{check_fetch, execute, Bus, Cpu, Stop};
use crate::hash::Hash;
use crate::instruction::Instruction;
use crate::jit::{BlockExit, Jit, JitContext};
use crate::memory::Memory;
use crate::state::{Fault, Status, VmState};
use crate::witness::{EcallExtra, MemoryProof, StepProof, StepWitness};
use std::cell::Cell;
use std::io::Write;

/// Largest text segment the fast interpreter pre-decodes (words outside it are decoded when fetched).
const MAX_DECODED_BYTES: u32 = 64 << 20;

/// Most bytes of one `write` ecall that reach the console; the call still returns its full length.
pub const MAX_CONSOLE_WRITE: u32 = 1 << 20;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The program called `exit` with this code.
    Exited(u32),
    /// An instruction faulted.
    Faulted(Fault),
    /// The step budget ran out while the machine was still running.
    StepLimit,
}

/// Most bytes of each console stream a machine keeps for its caller; what the program writes
/// beyond is still echoed (streamed) but only counted, so that a guest looping on `write` cannot
/// exhaust the host's memory.
pub const MAX_CONSOLE_KEPT: usize = 1 << 20;

/// What the program wrote to fds 1 and 2: the first [`MAX_CONSOLE_KEPT`] bytes of each kept for
/// the caller, the rest counted; optionally echoed live.
#[derive(Debug, Clone, Default)]
struct Console {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Bytes written to each stream beyond what is kept.
    dropped: [u64; 2],
    echo: bool,
}

/// Pre-decoded instructions of the text segment, kept in step with stores into it.
///
/// The entries are `Cell`s so that the interpreter loop can hold the table while the bus, which
/// shares it, re-decodes a word after a store: both sides go through shared references.
#[derive(Debug, Clone, Default)]
struct CodeCache {
    base: u32,
    table: Box<[Cell<Instruction>]>,
    /// `run_len[i]`: entries from `i` up to and including the first jump or branch (or the table's
    /// end). The interpreter walks that many entries without looking up the pc. It is a hint, not a
    /// rule: a taken jump ends the walk wherever it sits, and a walk that ends early just starts the
    /// next one, so it is not recomputed when a store re-decodes a word.
    run_len: Box<[u32]>,
    /// Set when a store re-decoded a word: compiled blocks of the old text must go.
    changed: Cell<bool>,
}

impl CodeCache {
    fn new(memory: &Memory, base: u32, len: u32) -> Self {
        let table: Box<[Cell<Instruction>]> = (0..len / 4)
            .map(|i| Cell::new(Instruction::decode(memory.read_word(base + 4 * i))))
            .collect();
        let mut run_len = vec![1u32; table.len()].into_boxed_slice();
        for i in (0..table.len().saturating_sub(1)).rev() {
            if !table[i].get().opcode.is_control_transfer() {
                run_len[i] = run_len[i + 1] + 1;
            }
        }
        Self {
            base,
            table,
            run_len,
            changed: Cell::new(false),
        }
    }

    /// Re-decodes the words of `addr .. addr + len` that lie in the table, after a store there.
    #[inline(always)]
    fn invalidate(&self, memory: &Memory, addr: u32, len: u32) {
        let offset = addr.wrapping_sub(self.base);
        if offset >= (self.table.len() as u32) << 2 {
            return;
        }
        for word in (offset & !3..offset + len).step_by(4) {
            if let Some(slot) = self.table.get((word >> 2) as usize) {
                slot.set(Instruction::decode(memory.read_word(self.base + word)));
                self.changed.set(true);
            }
        }
    }
}

/// The RV32IM machine of `docs/protocol.md`. Cloning it is taking a checkpoint: the clone shares
/// nothing mutable with the original.
#[derive(Debug, Clone)]
pub struct Machine {
    cpu: Cpu,
    step: u64,
    status: Status,
    exit_code: u32,
    memory: Memory,
    code: CodeCache,
    /// Compiled blocks of `code`; a clone starts without any.
    jit: Jit,
    /// Whether [`Self::run`] may use compiled blocks.
    compile_blocks: bool,
    inputs: InputSlots,
    output: OutputAccumulator,
    console: Console,
}

impl Machine {
    /// The initial state of `image` with `inputs` (`docs/protocol.md` section 2).
    pub fn new(image: &ElfImage, inputs: InputSlots) -> Self {
        let mut memory = Memory::default();
        for segment in &image.segments {
            memory.write_bytes(segment.vaddr, &segment.data);
        }
        let code = image
            .segments
            .iter()
            .find(|s| (s.vaddr..s.vaddr.saturating_add(s.mem_size)).contains(&image.entry))
            .map(|s| {
                CodeCache::new(
                    &memory,
                    s.vaddr & !3,
                    s.mem_size.min(MAX_DECODED_BYTES) & !3,
                )
            })
            .unwrap_or_default();
        let mut cpu = Cpu {
            pc: image.entry,
            ..Cpu::default()
        };
        cpu.regs[2] = STACK_TOP;
        Self {
            cpu,
            step: 0,
            status: Status::Running,
            exit_code: 0,
            memory,
            code,
            jit: Jit::default(),
            compile_blocks: true,
            inputs,
            output: OutputAccumulator::default(),
            console: Console::default(),
        }
    }

    /// Echo what the program writes to fds 1 and 2 to this process's stdout and stderr as it runs.
    pub fn set_console_echo(&mut self, echo: bool) {
        self.console.echo = echo;
    }

    /// Whether [`Self::run`] compiles hot blocks to native code (on x86-64 hosts; the default) or
    /// interprets every step. Both take exactly the same steps; turning it off is for comparing
    /// them and for measuring the interpreter alone.
    pub fn set_block_compiler(&mut self, enabled: bool) {
        self.compile_blocks = enabled;
    }

    /// Blocks compiled to native code so far (0 where the host has no code generator).
    pub fn compiled_blocks(&self) -> usize {
        self.jit.len()
    }

    /// The block compiler, for tests that give it a failing arena.
    #[cfg(test)]
    pub(crate) fn jit_mut(&mut self) -> &mut Jit {
        &mut self.jit
    }

    /// What the program wrote to stdout: its first [`MAX_CONSOLE_KEPT`] bytes.
    pub fn stdout(&self) -> &[u8] {
        &self.console.stdout
    }

    /// What the program wrote to stderr: its first [`MAX_CONSOLE_KEPT`] bytes.
    pub fn stderr(&self) -> &[u8] {
        &self.console.stderr
    }

    /// Bytes the program wrote to stdout and to stderr beyond those kept.
    pub fn console_dropped(&self) -> [u64; 2] {
        self.console.dropped
    }

    /// Steps executed so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Running, exited or faulted.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The outcome so far: exit code, fault, or (still running) `StepLimit`.
    pub fn outcome(&self) -> RunOutcome {
        match self.status {
            Status::Running => RunOutcome::StepLimit,
            Status::Exited => RunOutcome::Exited(self.exit_code),
            Status::Faulted => RunOutcome::Faulted(
                Fault::from_code(self.exit_code).expect("faulted machines hold a fault code"),
            ),
        }
    }

    /// The register file (x0 is 0).
    pub fn registers(&self) -> &[u32; 32] {
        &self.cpu.regs
    }

    /// Sets register `reg` (x0 stays 0): for building arbitrary states in tests and fuzzers.
    pub fn set_register(&mut self, reg: usize, value: u32) {
        self.cpu.regs[reg & 31] = value;
        self.cpu.regs[0] = 0;
    }

    /// The program counter.
    pub fn pc(&self) -> u32 {
        self.cpu.pc
    }

    /// The memory (to read results, or hash).
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The input slots.
    pub fn inputs(&self) -> &InputSlots {
        &self.inputs
    }

    /// The output accumulator.
    pub fn output(&mut self) -> &mut OutputAccumulator {
        &mut self.output
    }

    /// The committed state; hashes whatever changed since it was last asked for.
    pub fn state(&mut self) -> VmState {
        VmState {
            pc: self.cpu.pc,
            regs: self.cpu.regs,
            mem_root: self.memory.merkle_root(),
            step: self.step,
            status: self.status,
            exit_code: self.exit_code,
            input_root: self.inputs.root(),
            output_acc: self.output.hash(),
        }
    }

    /// Hash of [`Self::state`].
    pub fn state_hash(&mut self) -> Hash {
        self.state().hash()
    }

    fn stop(&mut self, stop: Stop) {
        match stop {
            Stop::Exit(code) => {
                self.status = Status::Exited;
                self.exit_code = code;
            }
            Stop::Fault(fault) => {
                self.status = Status::Faulted;
                self.exit_code = fault as u32;
            }
        }
    }

    /// Runs at most `max_steps` steps with no hashing at all, until exit or fault.
    pub fn run(&mut self, max_steps: u64) -> RunOutcome {
        if self.status != Status::Running {
            return self.outcome();
        }
        if self.code.changed.take() {
            self.jit.flush();
        }
        // The registers live in the context that compiled blocks share with the interpreter.
        let mut ctx = JitContext::new(self.cpu.regs);
        let mut pc = self.cpu.pc;
        // Locals, not fields: stores through the bus cannot alias them, so they stay in registers.
        let base = self.code.base;
        let table: &[Cell<Instruction>] = &self.code.table;
        let run_len: &[u32] = &self.code.run_len;
        let compile_blocks = self.compile_blocks;
        let jit = &mut self.jit;
        let mut bus = MachineBus::<false>::new(
            &mut self.memory,
            &self.code,
            &self.inputs,
            &mut self.output,
            &mut self.console,
        );
        let fetched = Cell::new(Instruction::ILLEGAL);
        let mut remaining = max_steps;
        // After a compiled block hands an instruction back, the interpreter takes the next run.
        let mut interpret = false;
        let stop = 'blocks: loop {
            if remaining == 0 {
                break None;
            }
            // Rotating the two low bits to the top makes a misaligned pc index past the end: one
            // compare rejects both misaligned and out-of-table addresses.
            let index = pc.wrapping_sub(base).rotate_right(2) as usize;
            if compile_blocks && !interpret && index < table.len() {
                if let Some(block) = jit.lookup(index, table, base) {
                    if u64::from(block.len) <= remaining {
                        ctx.pc = pc;
                        ctx.remaining = remaining;
                        ctx.pages = bus.memory.page_table_ptr().cast();
                        // SAFETY: the page table was just taken from the `&mut Memory` that the
                        // bus holds and that nothing touches until the block returns, and the
                        // budget covers the whole block.
                        let exit = unsafe { block.run(&mut ctx) };
                        pc = ctx.pc;
                        remaining = ctx.remaining;
                        interpret = exit == BlockExit::Interpret;
                        continue;
                    }
                }
            }
            interpret = false;
            // A straight run of the table up to its first jump or branch: the budget is checked
            // once per run, and the table is walked without re-deriving an index from the pc.
            // Outside the table, the one word at the pc is decoded into `fetched`.
            let run: &[Cell<Instruction>] = if index < table.len() {
                let len = (run_len[index] as u64).min(remaining) as usize;
                &table[index..index + len]
            } else {
                match check_fetch(pc) {
                    Ok(()) => fetched.set(Instruction::decode(bus.memory.read_word(pc))),
                    Err(fault) => {
                        remaining -= 1;
                        break Some(Stop::Fault(fault));
                    }
                }
                std::slice::from_ref(&fetched)
            };
            for cell in run {
                remaining -= 1;
                match execute(&mut ctx.regs, pc, &mut bus, cell.get()) {
                    Ok(next) => {
                        let sequential = next == pc.wrapping_add(4);
                        pc = next;
                        if !sequential {
                            break;
                        }
                    }
                    Err(stop) => break 'blocks Some(stop),
                }
            }
            if bus.code.changed.take() {
                jit.flush();
            }
        };
        self.cpu = Cpu { pc, regs: ctx.regs };
        self.step += max_steps - remaining;
        if let Some(stop) = stop {
            self.stop(stop);
        }
        self.outcome()
    }

    /// Runs until the step counter reaches `step` (or the machine stops first).
    pub fn run_to(&mut self, step: u64) -> RunOutcome {
        self.run(step.saturating_sub(self.step))
    }

    /// Executes one step and returns its witness, with the state hashes before and after.
    pub fn prove_step(&mut self) -> StepProof {
        let pre_state = self.state();
        let pre_state_hash = pre_state.hash();
        let mut witness = StepWitness {
            pre_state,
            instruction: None,
            extra: None,
            memory: None,
        };
        let mut instruction_word = None;
        if self.status == Status::Running {
            self.step += 1;
            let pc = self.cpu.pc;
            let result = check_fetch(pc).map_err(Stop::Fault).and_then(|()| {
                let proof = self.memory.proof(pc);
                let word = u32::from_le_bytes(
                    proof.leaf[pc as usize % 32..pc as usize % 32 + 4]
                        .try_into()
                        .expect("4"),
                );
                witness.instruction = Some(proof);
                instruction_word = Some(word);
                let mut bus = MachineBus::<true>::new(
                    &mut self.memory,
                    &self.code,
                    &self.inputs,
                    &mut self.output,
                    &mut self.console,
                );
                let result = execute(&mut self.cpu.regs, pc, &mut bus, Instruction::decode(word))
                    .map(|next| self.cpu.pc = next);
                witness.extra = bus.record.extra;
                witness.memory = bus.record.memory;
                result
            });
            if let Err(stop) = result {
                self.stop(stop);
            }
        }
        StepProof {
            step: witness.pre_state.step,
            pre_state_hash,
            post_state_hash: self.state_hash(),
            instruction_word,
            witness: witness.encode(),
            pre_state: witness.pre_state,
        }
    }
}

/// What the proving bus saw: at most one data leaf and one ecall extra per step.
#[derive(Default)]
struct Record {
    memory: Option<MemoryProof>,
    extra: Option<EcallExtra>,
}

/// The one bus of both drivers; with `PROVE` it first records a proof of everything it touches.
struct MachineBus<'a, const PROVE: bool> {
    memory: &'a mut Memory,
    code: &'a CodeCache,
    inputs: &'a InputSlots,
    output: &'a mut OutputAccumulator,
    console: &'a mut Console,
    record: Record,
}

impl<'a, const PROVE: bool> MachineBus<'a, PROVE> {
    /// The bus over the machine's parts (taken one by one, so that the registers stay free for the
    /// driver), with nothing recorded yet.
    fn new(
        memory: &'a mut Memory,
        code: &'a CodeCache,
        inputs: &'a InputSlots,
        output: &'a mut OutputAccumulator,
        console: &'a mut Console,
    ) -> Self {
        Self {
            memory,
            code,
            inputs,
            output,
            console,
            record: Record::default(),
        }
    }

    #[inline(always)]
    fn touch(&mut self, addr: u32) {
        if PROVE {
            assert!(
                self.record.memory.is_none(),
                "an instruction touched a second data leaf"
            );
            self.record.memory = Some(self.memory.proof(addr));
        }
    }
}

impl<const PROVE: bool> Bus for MachineBus<'_, PROVE> {
    #[inline(always)]
    fn load<const N: usize>(&mut self, addr: u32) -> [u8; N] {
        self.touch(addr);
        self.memory.read(addr)
    }

    #[inline(always)]
    fn store<const N: usize>(&mut self, addr: u32, bytes: [u8; N]) {
        self.touch(addr);
        self.memory.write(addr, bytes);
        self.code.invalidate(self.memory, addr, N as u32);
    }

    fn read_chunk(&mut self, slot: u32, index: u32, dest: u32) -> Result<(), Fault> {
        if slot as usize >= INPUT_SLOTS {
            return Err(Fault::InputOutOfRange);
        }
        if PROVE {
            self.record.extra = Some(EcallExtra::Input(self.inputs.proof(slot, index)));
        }
        let chunk = self.inputs.chunk(slot, index)?;
        self.store(dest, chunk);
        Ok(())
    }

    fn write_chunk(&mut self, src: u32) -> Result<(), Fault> {
        if PROVE {
            self.record.extra = Some(EcallExtra::Accumulator(self.output.snapshot()));
        }
        if self.output.count() >= crate::commitment::OUTPUT_MAX_CHUNKS {
            return Err(Fault::OutputFull);
        }
        let chunk = self.load::<32>(src);
        self.output.append(chunk)
    }

    fn write_console(&mut self, fd: u32, buf: u32, len: u32) {
        let bytes = self
            .memory
            .read_bytes(buf, len.min(MAX_CONSOLE_WRITE) as usize);
        let (sink, dropped, echo): (&mut Vec<u8>, &mut u64, &mut dyn Write) = if fd == 1 {
            (
                &mut self.console.stdout,
                &mut self.console.dropped[0],
                &mut std::io::stdout(),
            )
        } else {
            (
                &mut self.console.stderr,
                &mut self.console.dropped[1],
                &mut std::io::stderr(),
            )
        };
        if self.console.echo {
            // The program's console is best effort: a closed pipe must not stop the machine.
            let _ = echo.write_all(&bytes).and_then(|()| echo.flush());
        }
        let kept = bytes.len().min(MAX_CONSOLE_KEPT - sink.len());
        sink.extend_from_slice(&bytes[..kept]);
        *dropped += (bytes.len() - kept) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{b, i, u, ECALL, LUI, OP_IMM};
    use crate::{ecall, ElfImage, InputSlots};

    #[test]
    fn a_guest_that_floods_its_console_keeps_one_mib_and_counts_the_rest() {
        let writes = 40i32;
        let program = [
            u(0x1_0000, 11, LUI),                     // a1 = 0x10000 (any readable bytes)
            u(0x1_0000, 12, LUI),                     // a2 = 64 KiB
            i(ecall::WRITE as i32, 0, 0, 17, OP_IMM), // a7 = write
            i(writes, 0, 0, 5, OP_IMM),               // t0 = writes
            i(1, 0, 0, 10, OP_IMM),                   // loop: a0 = 1 (stdout; write returns in a0)
            ECALL,                                    // write(1, a1, 64 KiB)
            i(-1, 5, 0, 5, OP_IMM),                   // t0 -= 1
            b(-12, 0, 5, 1),                          // bne t0, zero, loop
            i(0, 0, 0, 10, OP_IMM),                   // a0 = 0
            i(ecall::EXIT as i32, 0, 0, 17, OP_IMM),  // a7 = exit
            ECALL,
        ];
        let image = ElfImage::from_words(0x1_0000, &program, 0, &[]);
        for compiled in [false, true] {
            let mut m = Machine::new(&image, InputSlots::default());
            m.set_block_compiler(compiled);
            assert_eq!(m.run(10_000), RunOutcome::Exited(0));
            let written = writes as u64 * (64 << 10);
            assert_eq!(m.stdout().len(), MAX_CONSOLE_KEPT);
            assert_eq!(m.console_dropped(), [written - MAX_CONSOLE_KEPT as u64, 0]);
        }
    }
}
