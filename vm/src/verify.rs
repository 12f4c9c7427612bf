//! `verify_step`: the Rust twin of the Solidity step contract.
//!
//! Written from `docs/protocol.md` (sections 1 to 4) alone, on purpose apart from the machine's own
//! code path: it shares only the keccak primitives of [`crate::hash`]. It decodes the pre-state from
//! the witness, reads the witness front to back, proves every leaf it uses, executes the one RV32IM
//! instruction and returns the hash of the post-state encoding.
//!
//! `contracts/src/Step.sol` mirrors it function by function, in the same order and under the same
//! names (`snake_case` here is `_camelCase` there, and `verify_step` is `step`): a `Cursor` over
//! the witness bytes (`read_bytes` ... `finish`), the `State` (which the contract keeps in place in
//! its encoding: `write_reg`, `advance`, `fault`), `execute_step`, the proofs
//! `verify_instruction_proof`, `verify_memory_proof` / `memory_root_with_leaf` /
//! `rewrite_memory_proof`, `verify_input_proof`, `verify_chunk_proof`, `verify_accumulator` and `accumulator_append`, the
//! instruction fields, one `execute_*` function per instruction class and one `ecall_*` function
//! per ecall; the constants have the same names too. Every witness rejection is a [`VerifyError`]
//! whose variants carry the names and fields of the contract's custom errors.

use crate::hash::{ceil_log2, hash_pair, keccak256, root_from_path, zero_hash, Hash, MEMORY_DEPTH};

// ---- Layout (protocol sections 1 and 2) --------------------------------------------------------

/// Length of the state encoding (section 2).
const STATE_LEN: usize = 237;
/// Offsets of the state fields in the encoding (section 2).
const OFFSET_PC: usize = 0;
const OFFSET_REGS: usize = 4;
const OFFSET_MEM_ROOT: usize = 128;
const OFFSET_STEP: usize = 160;
const OFFSET_STATUS: usize = 168;
const OFFSET_EXIT_CODE: usize = 169;
const OFFSET_INPUT_ROOT: usize = 173;
const OFFSET_OUTPUT_ACC: usize = 205;

/// Status values (section 2).
const STATUS_RUNNING: u8 = 0;
const STATUS_EXITED: u8 = 1;
const STATUS_FAULTED: u8 = 2;

/// Leaf size of every tree, in bytes.
const LEAF_BYTES: u32 = 32;
/// Bytes of a memory proof's head: the leaf and the `u32` mask of omitted siblings (section 4).
const MEMORY_PROOF_HEAD_LEN: usize = 32 + 4;
/// The mask bits that name a level of the memory tree; a proof with any other bit set is bad.
const MEMORY_MASK_LEVELS: u32 = (1 << MEMORY_DEPTH) - 1;
/// End of the guard page `[0, 0x1000)` (section 3.1).
const GUARD_END: u32 = 0x1000;

/// Depth of the input tree and its number of slots (section 1.4).
const INPUT_DEPTH: usize = 4;
const INPUT_SLOTS: u32 = 1 << INPUT_DEPTH;
/// Bounds of a non-empty tensor header (section 1.3).
const MIN_HEADER_LEN: usize = 4;
const MAX_HEADER_LEN: usize = 1024;

/// Height of the output accumulator, its encoded length and its capacity (section 1.5).
const OUTPUT_DEPTH: usize = 27;
const ACCUMULATOR_LEN: usize = 4 + 32 * OUTPUT_DEPTH;
const OUTPUT_CAPACITY: u32 = (1 << OUTPUT_DEPTH) - 1;

// ---- Fault codes (section 3.4) -----------------------------------------------------------------

const FAULT_ILLEGAL_INSTRUCTION: u32 = 1;
const FAULT_BREAKPOINT: u32 = 2;
const FAULT_MISALIGNED_FETCH: u32 = 3;
const FAULT_MISALIGNED_ACCESS: u32 = 4;
const FAULT_UNMAPPED_ACCESS: u32 = 5;
const FAULT_UNKNOWN_ECALL: u32 = 6;
const FAULT_INPUT_OUT_OF_RANGE: u32 = 7;
const FAULT_OUTPUT_FULL: u32 = 8;

// ---- Opcodes (section 3.2) ---------------------------------------------------------------------

const OPCODE_LUI: u32 = 0b011_0111;
const OPCODE_AUIPC: u32 = 0b001_0111;
const OPCODE_JAL: u32 = 0b110_1111;
const OPCODE_JALR: u32 = 0b110_0111;
const OPCODE_BRANCH: u32 = 0b110_0011;
const OPCODE_LOAD: u32 = 0b000_0011;
const OPCODE_STORE: u32 = 0b010_0011;
const OPCODE_OP_IMM: u32 = 0b001_0011;
const OPCODE_OP: u32 = 0b011_0011;
const OPCODE_MISC_MEM: u32 = 0b000_1111;
const OPCODE_SYSTEM: u32 = 0b111_0011;

/// funct7 values of OP (and imm[11:5] of the OP-IMM shifts).
const FUNCT7_BASE: u32 = 0b000_0000;
const FUNCT7_ALT: u32 = 0b010_0000;
const FUNCT7_MEXT: u32 = 0b000_0001;

/// funct3 of JALR.
const FUNCT3_JALR: u32 = 0;
/// funct3 of BRANCH.
const FUNCT3_BEQ: u32 = 0;
const FUNCT3_BNE: u32 = 1;
const FUNCT3_BLT: u32 = 4;
const FUNCT3_BGE: u32 = 5;
const FUNCT3_BLTU: u32 = 6;
const FUNCT3_BGEU: u32 = 7;
/// funct3 of LOAD.
const FUNCT3_LB: u32 = 0;
const FUNCT3_LH: u32 = 1;
const FUNCT3_LW: u32 = 2;
const FUNCT3_LBU: u32 = 4;
const FUNCT3_LHU: u32 = 5;
/// funct3 of STORE.
const FUNCT3_SB: u32 = 0;
const FUNCT3_SH: u32 = 1;
const FUNCT3_SW: u32 = 2;
/// funct3 of OP and OP-IMM (ADD is also ADDI and SUB, SRL is also SRA, and so on).
const FUNCT3_ADD: u32 = 0;
const FUNCT3_SLL: u32 = 1;
const FUNCT3_SLT: u32 = 2;
const FUNCT3_SLTU: u32 = 3;
const FUNCT3_XOR: u32 = 4;
const FUNCT3_SRL: u32 = 5;
const FUNCT3_OR: u32 = 6;
const FUNCT3_AND: u32 = 7;
/// funct3 of OP with funct7 [`FUNCT7_MEXT`].
const FUNCT3_MUL: u32 = 0;
const FUNCT3_MULH: u32 = 1;
const FUNCT3_MULHSU: u32 = 2;
const FUNCT3_MULHU: u32 = 3;
const FUNCT3_DIV: u32 = 4;
const FUNCT3_DIVU: u32 = 5;
const FUNCT3_REM: u32 = 6;
/// funct3 of MISC-MEM.
const FUNCT3_FENCE: u32 = 0;
const FUNCT3_FENCE_I: u32 = 1;

/// The only two SYSTEM words that are not illegal.
const WORD_ECALL: u32 = 0x0000_0073;
const WORD_EBREAK: u32 = 0x0010_0073;

// ---- Ecalls (section 3.3) ----------------------------------------------------------------------

const REG_A0: usize = 10;
const REG_A1: usize = 11;
const REG_A2: usize = 12;
const REG_A7: usize = 17;

const ECALL_WRITE: u32 = 64;
const ECALL_EXIT: u32 = 93;
const ECALL_EXIT_GROUP: u32 = 94;
const ECALL_READ_CHUNK: u32 = 0x1_0000;
const ECALL_WRITE_CHUNK: u32 = 0x1_0001;
/// `-EBADF`, what `write` returns for an fd other than 1 and 2.
const EBADF: u32 = -9i32 as u32;

// ---- Errors (section 4) ------------------------------------------------------------------------

/// Why a witness is rejected (`docs/protocol.md` section 4). The Solidity step contract reverts with
/// a custom error of the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The pre-state does not hash to the given pre-state hash, or its status byte is not 0, 1 or 2.
    #[error("bad pre-state: {reason}")]
    BadPreState {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The witness ends before a part the step needs, or has bytes left over after the last one.
    #[error("bad witness length: {}", length_message(.what, .offset, .needed, .len))]
    BadWitnessLength {
        /// The part being read ("end of witness" for trailing bytes).
        what: &'static str,
        /// Where in the witness that part starts.
        offset: usize,
        /// Bytes that part needs (0 for trailing bytes: nothing more was expected).
        needed: usize,
        /// The witness's length.
        len: usize,
    },
    /// The instruction leaf and its path do not recompute to the pre-state's memory root, or the
    /// proof's mask of left-out siblings has a bit above the tree's depth.
    #[error(
        "bad instruction proof: the leaf holding pc {pc:#010x} does not prove against memRoot"
    )]
    BadInstructionProof {
        /// The pre-state's `pc`.
        pc: u32,
    },
    /// The data leaf and its path do not recompute to the pre-state's memory root, or the proof's
    /// mask of left-out siblings has a bit above the tree's depth.
    #[error(
        "bad memory proof: the leaf holding address {addr:#010x} does not prove against memRoot"
    )]
    BadMemoryProof {
        /// The address the load, store or chunk ecall accesses.
        addr: u32,
    },
    /// `read_chunk`'s header length is invalid, or the slot's leaf does not prove against the
    /// input root.
    #[error("bad input proof for slot {slot}: {reason}")]
    BadInputProof {
        /// The input slot (`a0`).
        slot: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// `read_chunk`'s chunk and its path do not recompute to the tensor's data root.
    #[error("bad chunk proof: chunk {chunk} of slot {slot} does not prove against its data root")]
    BadChunkProof {
        /// The input slot (`a0`).
        slot: u32,
        /// The chunk index (`a1`).
        chunk: u32,
    },
    /// `write_chunk`'s accumulator does not hash to the pre-state's `outputAcc`.
    #[error("bad accumulator: the witness's output accumulator does not hash to outputAcc")]
    BadAccumulator,
}

/// The text of [`VerifyError::BadWitnessLength`]: a truncation or trailing bytes.
fn length_message(what: &str, offset: &usize, needed: &usize, len: &usize) -> String {
    let (offset, needed, len) = (*offset, *needed, *len);
    if needed == 0 {
        format!(
            "{} trailing bytes after offset {offset} (witness is {len} bytes)",
            len.saturating_sub(offset)
        )
    } else {
        format!("{what} needs {needed} bytes at offset {offset}, but the witness is {len} bytes")
    }
}

// ---- Witness reader ----------------------------------------------------------------------------

/// Reads the witness front to back; running past its end is [`VerifyError::BadWitnessLength`].
struct Cursor<'a> {
    witness: &'a [u8],
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn new(witness: &'a [u8]) -> Self {
        Self { witness, offset: 0 }
    }

    /// The next `n` bytes.
    fn read_bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], VerifyError> {
        let len = self.witness.len();
        if len - self.offset < n {
            return Err(VerifyError::BadWitnessLength {
                what,
                offset: self.offset,
                needed: n,
                len,
            });
        }
        let bytes = &self.witness[self.offset..self.offset + n];
        self.offset += n;
        Ok(bytes)
    }

    /// The next 2 bytes as a big-endian `u16`.
    fn read_u16(&mut self, what: &'static str) -> Result<u16, VerifyError> {
        let b = self.read_bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The next 32 bytes.
    fn read_hash(&mut self, what: &'static str) -> Result<Hash, VerifyError> {
        Ok(to_hash(self.read_bytes(32, what)?))
    }

    /// The next `depth` hashes (a Merkle path, bottom to top).
    fn read_path(&mut self, depth: usize, what: &'static str) -> Result<Vec<Hash>, VerifyError> {
        let bytes = self.read_bytes(32 * depth, what)?;
        Ok(bytes.chunks_exact(32).map(to_hash).collect())
    }

    /// Rejects bytes left over after the last part.
    fn finish(&self) -> Result<(), VerifyError> {
        if self.offset == self.witness.len() {
            Ok(())
        } else {
            Err(VerifyError::BadWitnessLength {
                what: "end of witness",
                offset: self.offset,
                needed: 0,
                len: self.witness.len(),
            })
        }
    }
}

fn to_hash(bytes: &[u8]) -> Hash {
    bytes.try_into().expect("a 32-byte slice")
}

fn be_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

// ---- State (section 2) -------------------------------------------------------------------------

/// The decoded pre-state, which the step turns into the post-state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    pc: u32,
    /// `regs[0]` is x0: always 0, never stored.
    regs: [u32; 32],
    mem_root: Hash,
    step: u64,
    status: u8,
    exit_code: u32,
    input_root: Hash,
    output_acc: Hash,
}

impl State {
    /// Decodes the 237-byte encoding (the status byte is checked by the caller).
    fn decode(b: &[u8]) -> Self {
        let mut regs = [0u32; 32];
        for (r, reg) in regs.iter_mut().enumerate().skip(1) {
            *reg = be_u32(b, OFFSET_REGS + 4 * (r - 1));
        }
        Self {
            pc: be_u32(b, OFFSET_PC),
            regs,
            mem_root: to_hash(&b[OFFSET_MEM_ROOT..OFFSET_MEM_ROOT + 32]),
            step: u64::from_be_bytes(b[OFFSET_STEP..OFFSET_STEP + 8].try_into().expect("8 bytes")),
            status: b[OFFSET_STATUS],
            exit_code: be_u32(b, OFFSET_EXIT_CODE),
            input_root: to_hash(&b[OFFSET_INPUT_ROOT..OFFSET_INPUT_ROOT + 32]),
            output_acc: to_hash(&b[OFFSET_OUTPUT_ACC..OFFSET_OUTPUT_ACC + 32]),
        }
    }

    /// The 237-byte encoding.
    fn encode(&self) -> [u8; STATE_LEN] {
        let mut b = [0u8; STATE_LEN];
        b[OFFSET_PC..OFFSET_PC + 4].copy_from_slice(&self.pc.to_be_bytes());
        for r in 1..32 {
            let o = OFFSET_REGS + 4 * (r - 1);
            b[o..o + 4].copy_from_slice(&self.regs[r].to_be_bytes());
        }
        b[OFFSET_MEM_ROOT..OFFSET_MEM_ROOT + 32].copy_from_slice(&self.mem_root);
        b[OFFSET_STEP..OFFSET_STEP + 8].copy_from_slice(&self.step.to_be_bytes());
        b[OFFSET_STATUS] = self.status;
        b[OFFSET_EXIT_CODE..OFFSET_EXIT_CODE + 4].copy_from_slice(&self.exit_code.to_be_bytes());
        b[OFFSET_INPUT_ROOT..OFFSET_INPUT_ROOT + 32].copy_from_slice(&self.input_root);
        b[OFFSET_OUTPUT_ACC..OFFSET_OUTPUT_ACC + 32].copy_from_slice(&self.output_acc);
        b
    }

    /// Writes `rd`; writes to x0 are discarded.
    fn write_reg(&mut self, rd: usize, value: u32) {
        if rd != 0 {
            self.regs[rd] = value;
        }
    }

    /// `pc = pc + 4`.
    fn advance(&mut self) {
        self.pc = self.pc.wrapping_add(4);
    }

    /// A fault: `status = 2`, `exitCode = code`, nothing else changes.
    fn fault(&mut self, code: u32) {
        self.status = STATUS_FAULTED;
        self.exit_code = code;
    }
}

// ---- Entry point (section 4) -------------------------------------------------------------------

/// Computes the post-state hash of one step from the pre-state hash and the step's witness
/// (`docs/protocol.md` section 4): decodes and checks the pre-state, executes section 3 with the
/// witness's proofs, requires the witness to be consumed exactly, and returns `keccak256` of the
/// post-state encoding. A pre-state that has exited or faulted is returned unchanged.
pub fn verify_step(pre_state_hash: &Hash, witness: &[u8]) -> Result<Hash, VerifyError> {
    let mut c = Cursor::new(witness);
    let encoded = c.read_bytes(STATE_LEN, "pre-state")?;
    if keccak256(encoded) != *pre_state_hash {
        return Err(VerifyError::BadPreState {
            reason: "it does not hash to the pre-state hash",
        });
    }
    let mut s = State::decode(encoded);
    match s.status {
        STATUS_RUNNING => {
            // Not reachable in 2^64 steps; wrapping keeps a crafted pre-state from panicking.
            s.step = s.step.wrapping_add(1);
            execute_step(&mut s, &mut c)?;
        }
        STATUS_EXITED | STATUS_FAULTED => {}
        _ => {
            return Err(VerifyError::BadPreState {
                reason: "its status byte is not 0, 1 or 2",
            })
        }
    }
    c.finish()?;
    Ok(keccak256(&s.encode()))
}

/// Fetches (section 3.1), decodes and executes the instruction at `pc` of a running machine.
fn execute_step(s: &mut State, c: &mut Cursor<'_>) -> Result<(), VerifyError> {
    if !s.pc.is_multiple_of(4) {
        s.fault(FAULT_MISALIGNED_FETCH);
        return Ok(());
    }
    if s.pc < GUARD_END {
        s.fault(FAULT_UNMAPPED_ACCESS);
        return Ok(());
    }
    let insn = verify_instruction_proof(c, s)?;
    if insn & 0b11 != 0b11 {
        // A compressed (16-bit) instruction.
        s.fault(FAULT_ILLEGAL_INSTRUCTION);
        return Ok(());
    }
    // In the contract's order, which tries the classes by how often programs run them.
    match opcode(insn) {
        OPCODE_OP => execute_op(s, insn),
        OPCODE_OP_IMM => execute_op_imm(s, insn),
        OPCODE_LOAD => execute_load(s, c, insn)?,
        OPCODE_STORE => execute_store(s, c, insn)?,
        OPCODE_BRANCH => execute_branch(s, insn),
        OPCODE_LUI | OPCODE_AUIPC => execute_lui_auipc(s, insn),
        OPCODE_JAL => execute_jal(s, insn),
        OPCODE_JALR => execute_jalr(s, insn),
        OPCODE_MISC_MEM => execute_misc_mem(s, insn),
        OPCODE_SYSTEM => execute_system(s, c, insn)?,
        _ => s.fault(FAULT_ILLEGAL_INSTRUCTION),
    }
    Ok(())
}

// ---- Merkle proofs (sections 1 and 4) ----------------------------------------------------------

/// A memory leaf read from the witness with its path, which can be rewritten along that path.
struct MemoryProof {
    /// Leaf index, `addr >> 5`.
    index: u64,
    leaf: [u8; 32],
    path: Vec<Hash>,
}

/// Reads the memory proof `leaf ‖ mask ‖ siblings` of the leaf holding `addr` (section 4): the
/// siblings whose mask bit is set are left out of the witness and are the zero-subtree hashes of
/// their level. A mask with a bit above the tree's depth is `bad` (the caller's proof error).
fn read_memory_proof(
    c: &mut Cursor<'_>,
    addr: u32,
    what: &'static str,
    bad: VerifyError,
) -> Result<MemoryProof, VerifyError> {
    let head = c.read_bytes(MEMORY_PROOF_HEAD_LEN, what)?;
    let mask = be_u32(head, 32);
    if mask & !MEMORY_MASK_LEVELS != 0 {
        return Err(bad);
    }
    let mut given = c
        .read_path(MEMORY_DEPTH - mask.count_ones() as usize, what)?
        .into_iter();
    let path = (0..MEMORY_DEPTH)
        .map(|k| match (mask >> k) & 1 {
            1 => zero_hash(k),
            _ => given.next().expect("one sibling read per clear bit"),
        })
        .collect();
    Ok(MemoryProof {
        index: u64::from(addr / LEAF_BYTES),
        leaf: to_hash(&head[..32]),
        path,
    })
}

/// The memory root of the tree that holds `leaf` where the proof's leaf is (section 1).
fn memory_root_with_leaf(proof: &MemoryProof, leaf: &[u8; 32]) -> Hash {
    root_from_path(leaf, proof.index, &proof.path)
}

/// Reads the instruction proof, checks it against `memRoot` and returns the little-endian word at
/// byte `pc mod 32` of the leaf.
fn verify_instruction_proof(c: &mut Cursor<'_>, s: &State) -> Result<u32, VerifyError> {
    let bad = VerifyError::BadInstructionProof { pc: s.pc };
    let proof = read_memory_proof(c, s.pc, "instruction proof", bad)?;
    if memory_root_with_leaf(&proof, &proof.leaf) != s.mem_root {
        return Err(VerifyError::BadInstructionProof { pc: s.pc });
    }
    let o = (s.pc % LEAF_BYTES) as usize;
    Ok(u32::from_le_bytes(
        proof.leaf[o..o + 4].try_into().expect("4 bytes"),
    ))
}

/// Reads the memory proof of the leaf holding `addr` and checks it against `mem_root`.
fn verify_memory_proof(
    c: &mut Cursor<'_>,
    mem_root: &Hash,
    addr: u32,
) -> Result<MemoryProof, VerifyError> {
    let proof = read_memory_proof(
        c,
        addr,
        "memory proof",
        VerifyError::BadMemoryProof { addr },
    )?;
    if memory_root_with_leaf(&proof, &proof.leaf) != *mem_root {
        return Err(VerifyError::BadMemoryProof { addr });
    }
    Ok(proof)
}

/// Checks `proof` (of the leaf holding `addr`) against `mem_root` and returns the memory root with
/// `leaf` in place of the proof's leaf: [`verify_memory_proof`]'s check and [`memory_root_with_leaf`]
/// in one, as the contract does them in one pass over the path.
fn rewrite_memory_proof(
    proof: &MemoryProof,
    mem_root: &Hash,
    addr: u32,
    leaf: &[u8; 32],
) -> Result<Hash, VerifyError> {
    if memory_root_with_leaf(proof, &proof.leaf) != *mem_root {
        return Err(VerifyError::BadMemoryProof { addr });
    }
    Ok(memory_root_with_leaf(proof, leaf))
}

/// What the input proof says about one slot: its chunk count `n` (0 for an empty slot) and its data
/// root.
struct InputSlot {
    chunk_count: u32,
    data_root: Hash,
}

/// Reads `headerLen ‖ header ‖ dataRoot ‖ slotPath` and checks the slot's leaf against
/// `input_root` at index `slot` (section 4).
fn verify_input_proof(
    c: &mut Cursor<'_>,
    input_root: &Hash,
    slot: u32,
) -> Result<InputSlot, VerifyError> {
    let header_len = usize::from(c.read_u16("input proof header length")?);
    let (leaf, input) = if header_len == 0 {
        let empty = InputSlot {
            chunk_count: 0,
            data_root: [0; 32],
        };
        ([0u8; 32], empty)
    } else {
        if !(MIN_HEADER_LEN..=MAX_HEADER_LEN).contains(&header_len) {
            return Err(VerifyError::BadInputProof {
                slot,
                reason: "header length is not 0 and not in 4..=1024",
            });
        }
        let header = c.read_bytes(header_len, "input proof header")?;
        let data_root = c.read_hash("input proof data root")?;
        let byte_len = be_u32(header, 0);
        let leaf = keccak256(&[header, &data_root[..]].concat());
        let input = InputSlot {
            chunk_count: byte_len.div_ceil(LEAF_BYTES),
            data_root,
        };
        (leaf, input)
    };
    let slot_path = c.read_path(INPUT_DEPTH, "input proof slot path")?;
    if root_from_path(&leaf, u64::from(slot), &slot_path) != *input_root {
        return Err(VerifyError::BadInputProof {
            slot,
            reason: "the slot's leaf does not prove against inputRoot",
        });
    }
    Ok(input)
}

/// Reads `chunk ‖ chunkPath` (depth `ceil(log2(n))`) and checks it against the slot's data root at
/// index `chunk_index`; returns the chunk.
fn verify_chunk_proof(
    c: &mut Cursor<'_>,
    input: &InputSlot,
    slot: u32,
    chunk_index: u32,
) -> Result<[u8; 32], VerifyError> {
    let chunk = c.read_hash("input chunk")?;
    let depth = ceil_log2(u64::from(input.chunk_count)) as usize;
    let path = c.read_path(depth, "input chunk path")?;
    if root_from_path(&chunk, u64::from(chunk_index), &path) != input.data_root {
        return Err(VerifyError::BadChunkProof {
            slot,
            chunk: chunk_index,
        });
    }
    Ok(chunk)
}

/// The output accumulator `count ‖ frontier[0..27]` (section 1.5).
struct Accumulator {
    count: u32,
    frontier: [Hash; OUTPUT_DEPTH],
}

impl Accumulator {
    /// The 868-byte encoding, whose hash is `outputAcc`.
    fn encode(&self) -> [u8; ACCUMULATOR_LEN] {
        let mut b = [0u8; ACCUMULATOR_LEN];
        b[..4].copy_from_slice(&self.count.to_be_bytes());
        for (h, entry) in self.frontier.iter().enumerate() {
            b[4 + 32 * h..36 + 32 * h].copy_from_slice(entry);
        }
        b
    }
}

/// Reads the 868-byte accumulator and checks that it hashes to `output_acc`.
fn verify_accumulator(c: &mut Cursor<'_>, output_acc: &Hash) -> Result<Accumulator, VerifyError> {
    let bytes = c.read_bytes(ACCUMULATOR_LEN, "output accumulator")?;
    if keccak256(bytes) != *output_acc {
        return Err(VerifyError::BadAccumulator);
    }
    let mut frontier = [[0u8; 32]; OUTPUT_DEPTH];
    for (h, entry) in frontier.iter_mut().enumerate() {
        *entry = to_hash(&bytes[4 + 32 * h..36 + 32 * h]);
    }
    Ok(Accumulator {
        count: be_u32(bytes, 0),
        frontier,
    })
}

/// Appends `chunk` to the incremental tree (section 1.5); the caller checks `count < 2^27 − 1`.
fn accumulator_append(acc: &mut Accumulator, chunk: &[u8; 32]) {
    acc.count += 1;
    let mut node = *chunk;
    let mut size = acc.count;
    for h in 0..OUTPUT_DEPTH {
        if size & 1 == 1 {
            acc.frontier[h] = node;
            return;
        }
        node = hash_pair(&acc.frontier[h], &node);
        size >>= 1;
    }
}

// ---- Instruction fields (section 3.2) ----------------------------------------------------------

fn opcode(insn: u32) -> u32 {
    insn & 0x7f
}

fn rd(insn: u32) -> usize {
    ((insn >> 7) & 31) as usize
}

fn funct3(insn: u32) -> u32 {
    (insn >> 12) & 7
}

fn funct7(insn: u32) -> u32 {
    insn >> 25
}

/// The value of `rs1`.
fn rs1(s: &State, insn: u32) -> u32 {
    s.regs[((insn >> 15) & 31) as usize]
}

/// The value of `rs2`.
fn rs2(s: &State, insn: u32) -> u32 {
    s.regs[((insn >> 20) & 31) as usize]
}

/// `imm[11:0] = insn[31:20]`, sign-extended.
fn imm_i(insn: u32) -> u32 {
    ((insn as i32) >> 20) as u32
}

/// `imm[11:5] = insn[31:25]`, `imm[4:0] = insn[11:7]`, sign-extended.
fn imm_s(insn: u32) -> u32 {
    (((insn as i32) >> 25) << 5) as u32 | ((insn >> 7) & 0x1f)
}

/// `imm[12|10:5] = insn[31:25]`, `imm[4:1|11] = insn[11:7]`, sign-extended.
fn imm_b(insn: u32) -> u32 {
    (((insn as i32) >> 31) << 12) as u32
        | ((insn & 0x80) << 4)
        | ((insn >> 20) & 0x7e0)
        | ((insn >> 7) & 0x1e)
}

/// `imm[31:12] = insn[31:12]`.
fn imm_u(insn: u32) -> u32 {
    insn & 0xffff_f000
}

/// `imm[20|10:1|11|19:12] = insn[31:12]`, sign-extended.
fn imm_j(insn: u32) -> u32 {
    (((insn as i32) >> 31) << 20) as u32
        | (insn & 0x000f_f000)
        | ((insn >> 9) & 0x800)
        | ((insn >> 20) & 0x7fe)
}

// ---- Instruction classes (section 3.2) ---------------------------------------------------------

/// LUI: `rd = imm_u`; AUIPC: `rd = pc + imm_u`.
fn execute_lui_auipc(s: &mut State, insn: u32) {
    let value = if opcode(insn) == OPCODE_LUI {
        imm_u(insn)
    } else {
        s.pc.wrapping_add(imm_u(insn))
    };
    s.write_reg(rd(insn), value);
    s.advance();
}

/// JAL: `rd = pc + 4; pc = pc + imm_j`.
fn execute_jal(s: &mut State, insn: u32) {
    let target = s.pc.wrapping_add(imm_j(insn));
    s.write_reg(rd(insn), s.pc.wrapping_add(4));
    s.pc = target;
}

/// JALR (funct3 0): `t = (rs1 + imm_i) & ~1; rd = pc + 4; pc = t`.
fn execute_jalr(s: &mut State, insn: u32) {
    if funct3(insn) != FUNCT3_JALR {
        return s.fault(FAULT_ILLEGAL_INSTRUCTION);
    }
    let target = rs1(s, insn).wrapping_add(imm_i(insn)) & !1;
    s.write_reg(rd(insn), s.pc.wrapping_add(4));
    s.pc = target;
}

/// BEQ, BNE, BLT, BGE, BLTU, BGEU: taken `pc = pc + imm_b`, else `pc + 4`.
fn execute_branch(s: &mut State, insn: u32) {
    let (a, b) = (rs1(s, insn), rs2(s, insn));
    let taken = match funct3(insn) {
        FUNCT3_BEQ => a == b,
        FUNCT3_BNE => a != b,
        FUNCT3_BLT => (a as i32) < (b as i32),
        FUNCT3_BGE => (a as i32) >= (b as i32),
        FUNCT3_BLTU => a < b,
        FUNCT3_BGEU => a >= b,
        _ => return s.fault(FAULT_ILLEGAL_INSTRUCTION),
    };
    if taken {
        s.pc = s.pc.wrapping_add(imm_b(insn));
    } else {
        s.advance();
    }
}

/// The fault of a data access of `width` bytes at `addr`, checked in order: alignment, then the
/// guard page (section 3.2, loads and stores; section 3.3, chunk buffers).
fn access_fault(addr: u32, width: u32) -> Option<u32> {
    if !addr.is_multiple_of(width) {
        Some(FAULT_MISALIGNED_ACCESS)
    } else if addr < GUARD_END {
        Some(FAULT_UNMAPPED_ACCESS)
    } else {
        None
    }
}

/// LB, LH, LW, LBU, LHU from `rs1 + imm_i`, with a memory proof of the leaf read.
fn execute_load(s: &mut State, c: &mut Cursor<'_>, insn: u32) -> Result<(), VerifyError> {
    let (width, signed) = match funct3(insn) {
        FUNCT3_LB => (1, true),
        FUNCT3_LH => (2, true),
        FUNCT3_LW => (4, false),
        FUNCT3_LBU => (1, false),
        FUNCT3_LHU => (2, false),
        _ => {
            s.fault(FAULT_ILLEGAL_INSTRUCTION);
            return Ok(());
        }
    };
    let addr = rs1(s, insn).wrapping_add(imm_i(insn));
    if let Some(code) = access_fault(addr, width) {
        s.fault(code);
        return Ok(());
    }
    let proof = verify_memory_proof(c, &s.mem_root, addr)?;
    let o = (addr % LEAF_BYTES) as usize;
    let mut value = 0u32;
    for k in 0..width as usize {
        value |= u32::from(proof.leaf[o + k]) << (8 * k);
    }
    if signed {
        let unused = 32 - 8 * width;
        value = (((value << unused) as i32) >> unused) as u32;
    }
    s.write_reg(rd(insn), value);
    s.advance();
    Ok(())
}

/// SB, SH, SW of the low bytes of `rs2` to `rs1 + imm_s`: the leaf is modified and the memory
/// root recomputed along the proof's path.
fn execute_store(s: &mut State, c: &mut Cursor<'_>, insn: u32) -> Result<(), VerifyError> {
    let width: u32 = match funct3(insn) {
        FUNCT3_SB => 1,
        FUNCT3_SH => 2,
        FUNCT3_SW => 4,
        _ => {
            s.fault(FAULT_ILLEGAL_INSTRUCTION);
            return Ok(());
        }
    };
    let addr = rs1(s, insn).wrapping_add(imm_s(insn));
    if let Some(code) = access_fault(addr, width) {
        s.fault(code);
        return Ok(());
    }
    let proof = read_memory_proof(
        c,
        addr,
        "memory proof",
        VerifyError::BadMemoryProof { addr },
    )?;
    let value = rs2(s, insn).to_le_bytes();
    let o = (addr % LEAF_BYTES) as usize;
    let w = width as usize;
    let mut leaf = proof.leaf;
    leaf[o..o + w].copy_from_slice(&value[..w]);
    s.mem_root = rewrite_memory_proof(&proof, &s.mem_root, addr, &leaf)?;
    s.advance();
    Ok(())
}

/// ADDI, SLTI, SLTIU, XORI, ORI, ANDI, SLLI, SRLI, SRAI.
fn execute_op_imm(s: &mut State, insn: u32) {
    let a = rs1(s, insn);
    let imm = imm_i(insn);
    let shamt = imm & 31;
    let value = match (funct3(insn), funct7(insn)) {
        (FUNCT3_ADD, _) => a.wrapping_add(imm),
        (FUNCT3_SLT, _) => u32::from((a as i32) < (imm as i32)),
        (FUNCT3_SLTU, _) => u32::from(a < imm),
        (FUNCT3_XOR, _) => a ^ imm,
        (FUNCT3_OR, _) => a | imm,
        (FUNCT3_AND, _) => a & imm,
        (FUNCT3_SLL, FUNCT7_BASE) => a << shamt,
        (FUNCT3_SRL, FUNCT7_BASE) => a >> shamt,
        (FUNCT3_SRL, FUNCT7_ALT) => ((a as i32) >> shamt) as u32,
        _ => return s.fault(FAULT_ILLEGAL_INSTRUCTION),
    };
    s.write_reg(rd(insn), value);
    s.advance();
}

/// ADD, SUB, SLL, SLT, SLTU, XOR, SRL, SRA, OR, AND, and the M extension (funct7 1).
fn execute_op(s: &mut State, insn: u32) {
    let (a, b) = (rs1(s, insn), rs2(s, insn));
    let shamt = b & 31;
    let value = match (funct7(insn), funct3(insn)) {
        (FUNCT7_BASE, FUNCT3_ADD) => a.wrapping_add(b),
        (FUNCT7_ALT, FUNCT3_ADD) => a.wrapping_sub(b),
        (FUNCT7_BASE, FUNCT3_SLL) => a << shamt,
        (FUNCT7_BASE, FUNCT3_SLT) => u32::from((a as i32) < (b as i32)),
        (FUNCT7_BASE, FUNCT3_SLTU) => u32::from(a < b),
        (FUNCT7_BASE, FUNCT3_XOR) => a ^ b,
        (FUNCT7_BASE, FUNCT3_SRL) => a >> shamt,
        (FUNCT7_ALT, FUNCT3_SRL) => ((a as i32) >> shamt) as u32,
        (FUNCT7_BASE, FUNCT3_OR) => a | b,
        (FUNCT7_BASE, FUNCT3_AND) => a & b,
        (FUNCT7_MEXT, f3) => execute_mext(f3, a, b),
        _ => return s.fault(FAULT_ILLEGAL_INSTRUCTION),
    };
    s.write_reg(rd(insn), value);
    s.advance();
}

/// MUL, MULH, MULHSU, MULHU, DIV, DIVU, REM, REMU (funct3 0 to 7) of `a = rs1`, `b = rs2`.
fn execute_mext(funct3: u32, a: u32, b: u32) -> u32 {
    let (sa, sb) = (i64::from(a as i32), i64::from(b as i32));
    let (ua, ub) = (u64::from(a), u64::from(b));
    let overflow = a == 0x8000_0000 && b == u32::MAX;
    match funct3 {
        FUNCT3_MUL => a.wrapping_mul(b),
        FUNCT3_MULH => ((sa * sb) >> 32) as u32,
        FUNCT3_MULHSU => ((sa * ub as i64) >> 32) as u32,
        FUNCT3_MULHU => ((ua * ub) >> 32) as u32,
        FUNCT3_DIV if b == 0 => u32::MAX,
        FUNCT3_DIV if overflow => a,
        FUNCT3_DIV => ((a as i32) / (b as i32)) as u32,
        FUNCT3_DIVU if b == 0 => u32::MAX,
        FUNCT3_DIVU => a / b,
        FUNCT3_REM if b == 0 => a,
        FUNCT3_REM if overflow => 0,
        FUNCT3_REM => ((a as i32) % (b as i32)) as u32,
        // REMU (funct3 7).
        _ if b == 0 => a,
        _ => a % b,
    }
}

/// FENCE (funct3 0) and FENCE.I (funct3 1): no-ops.
fn execute_misc_mem(s: &mut State, insn: u32) {
    match funct3(insn) {
        FUNCT3_FENCE | FUNCT3_FENCE_I => s.advance(),
        _ => s.fault(FAULT_ILLEGAL_INSTRUCTION),
    }
}

/// ECALL (exactly `0x00000073`), EBREAK (exactly `0x00100073`); every other SYSTEM word is illegal.
fn execute_system(s: &mut State, c: &mut Cursor<'_>, insn: u32) -> Result<(), VerifyError> {
    match insn {
        WORD_ECALL => return execute_ecall(s, c),
        WORD_EBREAK => s.fault(FAULT_BREAKPOINT),
        _ => s.fault(FAULT_ILLEGAL_INSTRUCTION),
    }
    Ok(())
}

// ---- Ecalls (section 3.3) ----------------------------------------------------------------------

/// Dispatches on `a7`.
fn execute_ecall(s: &mut State, c: &mut Cursor<'_>) -> Result<(), VerifyError> {
    match s.regs[REG_A7] {
        ECALL_WRITE => ecall_write(s),
        ECALL_EXIT | ECALL_EXIT_GROUP => ecall_exit(s),
        ECALL_READ_CHUNK => return ecall_read_chunk(s, c),
        ECALL_WRITE_CHUNK => return ecall_write_chunk(s, c),
        _ => s.fault(FAULT_UNKNOWN_ECALL),
    }
    Ok(())
}

/// `write(fd = a0, buf = a1, len = a2)`: `a0 = a2` for fd 1 and 2, `a0 = -9` (EBADF) otherwise.
fn ecall_write(s: &mut State) {
    let fd = s.regs[REG_A0];
    s.regs[REG_A0] = if fd == 1 || fd == 2 {
        s.regs[REG_A2]
    } else {
        EBADF
    };
    s.advance();
}

/// `exit(code = a0)` and `exit_group`: `status = 1`, `exitCode = a0`, `pc` unchanged.
fn ecall_exit(s: &mut State) {
    s.status = STATUS_EXITED;
    s.exit_code = s.regs[REG_A0];
}

/// `read_chunk(slot = a0, chunk = a1, dest = a2)`: copies the chunk to the 32 bytes at `dest`,
/// proven by the input proof, the chunk proof and the memory proof of the leaf at `dest`.
fn ecall_read_chunk(s: &mut State, c: &mut Cursor<'_>) -> Result<(), VerifyError> {
    let (slot, chunk_index, dest) = (s.regs[REG_A0], s.regs[REG_A1], s.regs[REG_A2]);
    if let Some(code) = access_fault(dest, LEAF_BYTES) {
        s.fault(code);
        return Ok(());
    }
    if slot >= INPUT_SLOTS {
        s.fault(FAULT_INPUT_OUT_OF_RANGE);
        return Ok(());
    }
    let input = verify_input_proof(c, &s.input_root, slot)?;
    if chunk_index >= input.chunk_count {
        s.fault(FAULT_INPUT_OUT_OF_RANGE);
        return Ok(());
    }
    let chunk = verify_chunk_proof(c, &input, slot, chunk_index)?;
    let bad = VerifyError::BadMemoryProof { addr: dest };
    let proof = read_memory_proof(c, dest, "memory proof", bad)?;
    s.mem_root = rewrite_memory_proof(&proof, &s.mem_root, dest, &chunk)?;
    s.advance();
    Ok(())
}

/// `write_chunk(src = a0)`: appends the 32 bytes at `src` to the output accumulator, proven by the
/// accumulator's preimage and the memory proof of the leaf at `src`.
fn ecall_write_chunk(s: &mut State, c: &mut Cursor<'_>) -> Result<(), VerifyError> {
    let src = s.regs[REG_A0];
    if let Some(code) = access_fault(src, LEAF_BYTES) {
        s.fault(code);
        return Ok(());
    }
    let mut acc = verify_accumulator(c, &s.output_acc)?;
    if acc.count >= OUTPUT_CAPACITY {
        s.fault(FAULT_OUTPUT_FULL);
        return Ok(());
    }
    let proof = verify_memory_proof(c, &s.mem_root, src)?;
    accumulator_append(&mut acc, &proof.leaf);
    s.output_acc = keccak256(&acc.encode());
    s.advance();
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Witnesses are built by hand here, from a small sparse Merkle tree, so that these tests depend
    //! on the protocol and not on the machine's own proving path (the differential tests against the
    //! machine are in `vm/tests/`).

    use super::*;
    use crate::hash::zero_hash;
    use std::collections::BTreeMap;

    // ---- Test-only trees and witness builders --------------------------------------------------

    /// A Merkle tree of `depth` whose leaves are zero except the few set.
    #[derive(Clone)]
    struct SparseTree {
        depth: usize,
        leaves: BTreeMap<u64, [u8; 32]>,
    }

    impl SparseTree {
        fn new(depth: usize) -> Self {
            Self {
                depth,
                leaves: BTreeMap::new(),
            }
        }

        fn set_leaf(&mut self, index: u64, leaf: [u8; 32]) {
            self.leaves.insert(index, leaf);
        }

        fn leaf(&self, index: u64) -> [u8; 32] {
            self.leaves.get(&index).copied().unwrap_or([0; 32])
        }

        /// Writes `bytes` at byte address `addr`, leaves being 32 consecutive bytes.
        fn write(&mut self, addr: u32, bytes: &[u8]) {
            let index = u64::from(addr >> 5);
            let mut leaf = self.leaf(index);
            let o = (addr % 32) as usize;
            leaf[o..o + bytes.len()].copy_from_slice(bytes);
            self.set_leaf(index, leaf);
        }

        /// The node at height `level` and position `index` in its row.
        fn node(&self, level: usize, index: u64) -> Hash {
            if self
                .leaves
                .range(index << level..(index + 1) << level)
                .next()
                .is_none()
            {
                zero_hash(level)
            } else if level == 0 {
                self.leaf(index)
            } else {
                hash_pair(
                    &self.node(level - 1, 2 * index),
                    &self.node(level - 1, 2 * index + 1),
                )
            }
        }

        fn root(&self) -> Hash {
            self.node(self.depth, 0)
        }

        fn path(&self, index: u64) -> Vec<Hash> {
            (0..self.depth)
                .map(|k| self.node(k, (index >> k) ^ 1))
                .collect()
        }

        /// `leaf ‖ path` of the leaf at `index`.
        fn proof(&self, index: u64) -> Vec<u8> {
            let mut out = self.leaf(index).to_vec();
            self.path(index)
                .iter()
                .for_each(|h| out.extend_from_slice(h));
            out
        }

        /// The memory proof of the leaf holding `addr`, every sibling given (mask 0).
        fn memory_proof(&self, addr: u32) -> Vec<u8> {
            let index = u64::from(addr >> 5);
            [&self.leaf(index)[..], &[0; 4], &self.path(index).concat()].concat()
        }

        /// The memory proof of the leaf holding `addr` with the siblings in `mask` left out.
        fn masked_memory_proof(&self, addr: u32, mask: u32) -> Vec<u8> {
            let index = u64::from(addr >> 5);
            let mut out = [&self.leaf(index)[..], &mask.to_be_bytes()].concat();
            for (k, sibling) in self.path(index).iter().enumerate() {
                if (mask >> k) & 1 == 0 {
                    out.extend_from_slice(sibling);
                }
            }
            out
        }
    }

    /// Bytes of a memory proof that gives all 27 siblings (mask 0).
    const MEMORY_PROOF_LEN: usize = MEMORY_PROOF_HEAD_LEN + 32 * MEMORY_DEPTH;

    const PC: u32 = 0x1000;
    const DATA: u32 = 0x2000;
    const FRESH: u32 = 0x3000;
    const INT_MIN: u32 = 0x8000_0000;
    const EMPTY_ACCUMULATOR: [u8; ACCUMULATOR_LEN] = [0; ACCUMULATOR_LEN];

    /// The leaf at `DATA`: sign bits in the first bytes, then `i` at byte `i`.
    fn data_leaf() -> [u8; 32] {
        let mut leaf: [u8; 32] = std::array::from_fn(|i| i as u8);
        leaf[..8].copy_from_slice(&[0x80, 0xff, 0x7f, 0x01, 0xef, 0xbe, 0xad, 0xde]);
        leaf
    }

    /// A running machine with one instruction at `PC`, `data_leaf()` at `DATA`, no inputs and an
    /// empty output.
    struct Vm {
        s: State,
        mem: SparseTree,
    }

    impl Vm {
        fn new(insn: u32, regs: &[(usize, u32)]) -> Self {
            let mut mem = SparseTree::new(MEMORY_DEPTH);
            mem.write(PC, &insn.to_le_bytes());
            mem.write(DATA, &data_leaf());
            let mut s = State {
                pc: PC,
                regs: [0; 32],
                mem_root: mem.root(),
                step: 41,
                status: STATUS_RUNNING,
                exit_code: 0,
                input_root: zero_hash(INPUT_DEPTH),
                output_acc: keccak256(&EMPTY_ACCUMULATOR),
            };
            for &(r, v) in regs {
                s.regs[r] = v;
            }
            Self { s, mem }
        }

        fn ecall(regs: &[(usize, u32)]) -> Self {
            Self::new(WORD_ECALL, regs)
        }

        fn hash(&self) -> Hash {
            keccak256(&self.s.encode())
        }

        /// `preState ‖ instructionProof? ‖ extra ‖ memoryProof(data)?`.
        fn witness(&self, extra: &[u8], data: Option<u32>) -> Vec<u8> {
            let mut w = self.s.encode().to_vec();
            if self.s.status == STATUS_RUNNING
                && self.s.pc.is_multiple_of(4)
                && self.s.pc >= GUARD_END
            {
                w.extend(self.mem.memory_proof(self.s.pc));
            }
            w.extend_from_slice(extra);
            if let Some(addr) = data {
                w.extend(self.mem.memory_proof(addr));
            }
            w
        }

        /// The hash of the pre-state after one more step and `change`.
        fn expect(&self, change: impl FnOnce(&mut State)) -> Hash {
            let mut s = self.s.clone();
            s.step += 1;
            change(&mut s);
            keccak256(&s.encode())
        }
    }

    /// What a step should do.
    #[derive(Clone, Copy)]
    enum Want<'a> {
        /// `pc += 4` and these registers written.
        Next(&'a [(usize, u32)]),
        /// `pc = target` and these registers written.
        Jump(u32, &'a [(usize, u32)]),
        /// `pc += 4` and these bytes written at this address.
        Store(u32, &'a [u8]),
        /// Fault with this code.
        Fault(u32),
        /// Exit with this code.
        Exit(u32),
    }

    fn expected(vm: &Vm, want: Want<'_>) -> Hash {
        vm.expect(|s| match want {
            Want::Next(regs) => {
                regs.iter().for_each(|&(r, v)| s.regs[r] = v);
                s.pc += 4;
            }
            Want::Jump(target, regs) => {
                regs.iter().for_each(|&(r, v)| s.regs[r] = v);
                s.pc = target;
            }
            Want::Store(addr, bytes) => {
                let mut mem = vm.mem.clone();
                mem.write(addr, bytes);
                s.mem_root = mem.root();
                s.pc += 4;
            }
            Want::Fault(code) => {
                s.status = STATUS_FAULTED;
                s.exit_code = code;
            }
            Want::Exit(code) => {
                s.status = STATUS_EXITED;
                s.exit_code = code;
            }
        })
    }

    // ---- Instruction encoders (independent of the decoder above) -------------------------------

    fn r(f7: u32, rs2: u32, rs1: u32, f3: u32, rd: u32, op: u32) -> u32 {
        f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op
    }
    fn i(imm: i32, rs1: u32, f3: u32, rd: u32, op: u32) -> u32 {
        (imm as u32 & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op
    }
    fn s(imm: i32, rs2: u32, rs1: u32, f3: u32) -> u32 {
        let m = imm as u32;
        (m >> 5 & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (m & 0x1f) << 7 | OPCODE_STORE
    }
    fn b(imm: i32, rs2: u32, rs1: u32, f3: u32) -> u32 {
        let m = imm as u32;
        (m >> 12 & 1) << 31
            | (m >> 5 & 0x3f) << 25
            | rs2 << 20
            | rs1 << 15
            | f3 << 12
            | (m >> 1 & 0xf) << 8
            | (m >> 11 & 1) << 7
            | OPCODE_BRANCH
    }
    fn u(imm: u32, rd: u32, op: u32) -> u32 {
        imm & 0xffff_f000 | rd << 7 | op
    }
    fn j(imm: i32, rd: u32) -> u32 {
        let m = imm as u32;
        (m >> 20 & 1) << 31
            | (m >> 1 & 0x3ff) << 21
            | (m >> 11 & 1) << 20
            | (m >> 12 & 0xff) << 12
            | rd << 7
            | OPCODE_JAL
    }
    fn op(f7: u32, f3: u32) -> u32 {
        r(f7, 7, 6, f3, 5, OPCODE_OP)
    }
    fn op_imm(imm: i32, f3: u32) -> u32 {
        i(imm, 6, f3, 5, OPCODE_OP_IMM)
    }
    fn load(imm: i32, f3: u32) -> u32 {
        i(imm, 6, f3, 5, OPCODE_LOAD)
    }
    fn store(imm: i32, f3: u32) -> u32 {
        s(imm, 7, 6, f3)
    }

    /// One instruction on `Vm::new(insn, regs)`, with the memory proof of `data` when given.
    struct Case<'a> {
        name: &'static str,
        insn: u32,
        regs: &'a [(usize, u32)],
        data: Option<u32>,
        want: Want<'a>,
    }

    fn case<'a>(
        name: &'static str,
        insn: u32,
        regs: &'a [(usize, u32)],
        want: Want<'a>,
    ) -> Case<'a> {
        Case {
            name,
            insn,
            regs,
            data: None,
            want,
        }
    }

    fn mem_case<'a>(
        name: &'static str,
        insn: u32,
        regs: &'a [(usize, u32)],
        data: u32,
        want: Want<'a>,
    ) -> Case<'a> {
        Case {
            name,
            insn,
            regs,
            data: Some(data),
            want,
        }
    }

    fn run_cases(cases: &[Case<'_>]) {
        for c in cases {
            let vm = Vm::new(c.insn, c.regs);
            let witness = vm.witness(&[], c.data);
            let got = verify_step(&vm.hash(), &witness)
                .unwrap_or_else(|e| panic!("{}: rejected: {e}", c.name));
            assert_eq!(got, expected(&vm, c.want), "{}", c.name);
        }
    }

    use Want::{Exit, Fault, Jump, Next, Store};

    // ---- Execution tables ----------------------------------------------------------------------

    #[test]
    #[rustfmt::skip] // One case a line: the table reads better than the formatter's layout.
    fn alu_instructions() {
        let m = FUNCT7_MEXT;
        let neg = |x: i32| x as u32;
        run_cases(&[
            case("addi", op_imm(-3, 0), &[(6, 10)], Next(&[(5, 7)])),
            case("addi wraps", op_imm(1, 0), &[(6, u32::MAX)], Next(&[(5, 0)])),
            case("addi from x0", i(5, 0, 0, 5, OPCODE_OP_IMM), &[], Next(&[(5, 5)])),
            case("addi to x0 is discarded", i(5, 6, 0, 0, OPCODE_OP_IMM), &[(6, 1)], Next(&[])),
            case("nop", 0x0000_0013, &[], Next(&[])),
            case("slti signed", op_imm(-4, 2), &[(6, -5i32 as u32)], Next(&[(5, 1)])),
            case("slti false", op_imm(-4, 2), &[(6, 3)], Next(&[(5, 0)])),
            case("sltiu -1 is max", op_imm(-1, 3), &[(6, 5)], Next(&[(5, 1)])),
            case("sltiu max", op_imm(-1, 3), &[(6, u32::MAX)], Next(&[(5, 0)])),
            case("xori -1 is not", op_imm(-1, 4), &[(6, 0x0f0f_0f0f)], Next(&[(5, 0xf0f0_f0f0)])),
            case("ori", op_imm(0x70f, 6), &[(6, 0x1000_00f0)], Next(&[(5, 0x1000_07ff)])),
            case("andi sign-extends", op_imm(-16, 7), &[(6, 0x1234_5678)], Next(&[(5, 0x1234_5670)])),
            case("slli 31", op_imm(31, 1), &[(6, 3)], Next(&[(5, INT_MIN)])),
            case("srli 31", op_imm(31, 5), &[(6, INT_MIN)], Next(&[(5, 1)])),
            case("srai 4", op_imm(0x404, 5), &[(6, INT_MIN)], Next(&[(5, 0xf800_0000)])),
            case("srai positive", op_imm(0x401, 5), &[(6, 6)], Next(&[(5, 3)])),
            case("slli imm[11:5] != 0", op_imm(0x401, 1), &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("srli imm[11:5] = 1", op_imm(0x021, 5), &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("add wraps", op(0, 0), &[(6, u32::MAX), (7, 2)], Next(&[(5, 1)])),
            case("sub", op(0x20, 0), &[(6, 0), (7, 1)], Next(&[(5, u32::MAX)])),
            case("sll uses 5 bits", op(0, 1), &[(6, 3), (7, 33)], Next(&[(5, 6)])),
            case("slt signed", op(0, 2), &[(6, u32::MAX), (7, 1)], Next(&[(5, 1)])),
            case("sltu unsigned", op(0, 3), &[(6, u32::MAX), (7, 1)], Next(&[(5, 0)])),
            case("xor", op(0, 4), &[(6, 0xff00), (7, 0x0ff0)], Next(&[(5, 0xf0f0)])),
            case("srl uses 5 bits", op(0, 5), &[(6, INT_MIN), (7, 36)], Next(&[(5, 0x0800_0000)])),
            case("sra", op(0x20, 5), &[(6, INT_MIN), (7, 31)], Next(&[(5, u32::MAX)])),
            case("or", op(0, 6), &[(6, 0xff00), (7, 0x0ff0)], Next(&[(5, 0xfff0)])),
            case("and", op(0, 7), &[(6, 0xff00), (7, 0x0ff0)], Next(&[(5, 0x0f00)])),
            case("add rd = rs1", r(0, 7, 5, 0, 5, OPCODE_OP), &[(5, 2), (7, 3)], Next(&[(5, 5)])),
            case("add to x0", r(0, 7, 6, 0, 0, OPCODE_OP), &[(6, 2), (7, 3)], Next(&[])),
            case("sub funct7 0x20 only", op(0x21, 0), &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("sll funct7 0x20", op(0x20, 1), &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("xor funct7 0x20", op(0x20, 4), &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("funct7 2", op(2, 0), &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("lui", u(0xdead_b000, 5, OPCODE_LUI), &[], Next(&[(5, 0xdead_b000)])),
            case("lui to x0", u(0xdead_b000, 0, OPCODE_LUI), &[], Next(&[])),
            case("auipc", u(0x1234_5000, 5, OPCODE_AUIPC), &[], Next(&[(5, 0x1234_6000)])),
            case("auipc wraps", u(0xffff_f000, 5, OPCODE_AUIPC), &[], Next(&[(5, 0)])),
            // M extension.
            case("mul wraps", op(m, 0), &[(6, 0x1_0000), (7, 0x1_0000)], Next(&[(5, 0)])),
            case("mul signs", op(m, 0), &[(6, neg(-3)), (7, 7)], Next(&[(5, neg(-21))])),
            case("mulh -1 * -1", op(m, 1), &[(6, u32::MAX), (7, u32::MAX)], Next(&[(5, 0)])),
            case("mulh min * min", op(m, 1), &[(6, INT_MIN), (7, INT_MIN)], Next(&[(5, 0x4000_0000)])),
            case("mulh -2 * 3", op(m, 1), &[(6, neg(-2)), (7, 3)], Next(&[(5, u32::MAX)])),
            case("mulhsu -1 * max", op(m, 2), &[(6, u32::MAX), (7, u32::MAX)], Next(&[(5, u32::MAX)])),
            case("mulhsu 2 * max", op(m, 2), &[(6, 2), (7, u32::MAX)], Next(&[(5, 1)])),
            case("mulhsu min * min", op(m, 2), &[(6, INT_MIN), (7, INT_MIN)], Next(&[(5, 0xc000_0000)])),
            case("mulhu max * max", op(m, 3), &[(6, u32::MAX), (7, u32::MAX)], Next(&[(5, 0xffff_fffe)])),
            case("div by zero", op(m, 4), &[(6, 7), (7, 0)], Next(&[(5, u32::MAX)])),
            case("div min / -1", op(m, 4), &[(6, INT_MIN), (7, u32::MAX)], Next(&[(5, INT_MIN)])),
            case("div rounds to zero", op(m, 4), &[(6, neg(-7)), (7, 2)], Next(&[(5, neg(-3))])),
            case("div by negative", op(m, 4), &[(6, 7), (7, neg(-2))], Next(&[(5, neg(-3))])),
            case("divu by zero", op(m, 5), &[(6, 7), (7, 0)], Next(&[(5, u32::MAX)])),
            case("divu", op(m, 5), &[(6, u32::MAX), (7, 2)], Next(&[(5, 0x7fff_ffff)])),
            case("rem by zero", op(m, 6), &[(6, neg(-7)), (7, 0)], Next(&[(5, neg(-7))])),
            case("rem min % -1", op(m, 6), &[(6, INT_MIN), (7, u32::MAX)], Next(&[(5, 0)])),
            case("rem sign of dividend", op(m, 6), &[(6, neg(-7)), (7, 2)], Next(&[(5, neg(-1))])),
            case("rem by negative", op(m, 6), &[(6, 7), (7, neg(-2))], Next(&[(5, 1)])),
            case("remu by zero", op(m, 7), &[(6, 7), (7, 0)], Next(&[(5, 7)])),
            case("remu", op(m, 7), &[(6, u32::MAX), (7, 10)], Next(&[(5, 5)])),
            case("div to x0", r(m, 7, 6, 4, 0, OPCODE_OP), &[(6, 7), (7, 0)], Next(&[])),
        ]);
    }

    #[test]
    #[rustfmt::skip] // One case a line: the table reads better than the formatter's layout.
    fn jumps_and_branches() {
        let beq = |imm| b(imm, 6, 5, 0);
        run_cases(&[
            case("jal", j(8, 1), &[], Jump(0x1008, &[(1, 0x1004)])),
            case("jal x0 backwards", j(-8, 0), &[], Jump(0x0ff8, &[])),
            case("jal far forward", j(0xf_fffe, 1), &[], Jump(0x10_0ffe, &[(1, 0x1004)])),
            case("jal far backward", j(-0x10_0000, 5), &[], Jump(0xfff0_1000, &[(5, 0x1004)])),
            case("jal bit 11", j(0x800, 5), &[], Jump(0x1800, &[(5, 0x1004)])),
            case("jalr clears bit 0", i(4, 1, 0, 1, OPCODE_JALR), &[(1, 0x3001)], Jump(0x3004, &[(1, 0x1004)])),
            case("jalr x0", i(-1, 6, 0, 0, OPCODE_JALR), &[(6, 0x2001)], Jump(0x2000, &[])),
            case("jalr wraps", i(-4, 6, 0, 5, OPCODE_JALR), &[(6, 2)], Jump(0xffff_fffe, &[(5, 0x1004)])),
            case("jalr funct3 1", i(0, 6, 1, 5, OPCODE_JALR), &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("beq taken", beq(16), &[(5, 7), (6, 7)], Jump(0x1010, &[])),
            case("beq not taken", beq(16), &[(5, 7), (6, 8)], Next(&[])),
            case("beq bit 11", beq(0x800), &[], Jump(0x1800, &[])),
            case("beq bit 12 (negative)", beq(-4096), &[], Jump(0, &[])),
            case("beq max", beq(4094), &[], Jump(0x1ffe, &[])),
            case("bne taken backwards", b(-16, 6, 5, 1), &[(5, 1)], Jump(0x0ff0, &[])),
            case("bne not taken", b(-16, 6, 5, 1), &[], Next(&[])),
            case("blt signed", b(8, 6, 5, 4), &[(5, u32::MAX), (6, 1)], Jump(0x1008, &[])),
            case("blt equal", b(8, 6, 5, 4), &[(5, 1), (6, 1)], Next(&[])),
            case("bge equal", b(8, 6, 5, 5), &[(5, 1), (6, 1)], Jump(0x1008, &[])),
            case("bge signed", b(8, 6, 5, 5), &[(5, u32::MAX), (6, 1)], Next(&[])),
            case("bltu unsigned", b(8, 6, 5, 6), &[(5, u32::MAX), (6, 1)], Next(&[])),
            case("bltu taken", b(8, 6, 5, 6), &[(5, 1), (6, u32::MAX)], Jump(0x1008, &[])),
            case("bgeu unsigned", b(8, 6, 5, 7), &[(5, u32::MAX), (6, 1)], Jump(0x1008, &[])),
            case("bgeu not taken", b(8, 6, 5, 7), &[(5, 0), (6, 1)], Next(&[])),
            case("branch funct3 2", b(8, 6, 5, 2), &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("branch funct3 3", b(8, 6, 5, 3), &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
        ]);
    }

    #[test]
    #[rustfmt::skip] // One case a line: the table reads better than the formatter's layout.
    fn loads_and_stores() {
        const AT_DATA: &[(usize, u32)] = &[(6, DATA), (7, 0x1122_3344)];
        run_cases(&[
            mem_case("lb sign-extends", load(0, 0), AT_DATA, DATA, Next(&[(5, 0xffff_ff80)])),
            mem_case("lb positive", load(2, 0), AT_DATA, DATA, Next(&[(5, 0x7f)])),
            mem_case("lbu", load(0, 4), AT_DATA, DATA, Next(&[(5, 0x80)])),
            mem_case("lh sign-extends", load(0, 1), AT_DATA, DATA, Next(&[(5, 0xffff_ff80)])),
            mem_case("lh high half", load(6, 1), AT_DATA, DATA, Next(&[(5, 0xffff_dead)])),
            mem_case("lh positive", load(2, 1), AT_DATA, DATA, Next(&[(5, 0x017f)])),
            mem_case("lhu", load(0, 5), AT_DATA, DATA, Next(&[(5, 0xff80)])),
            mem_case("lw", load(0, 2), AT_DATA, DATA, Next(&[(5, 0x017f_ff80)])),
            mem_case("lw second word", load(4, 2), AT_DATA, DATA, Next(&[(5, 0xdead_beef)])),
            mem_case("lw last word of leaf", load(28, 2), AT_DATA, DATA + 28, Next(&[(5, 0x1f1e_1d1c)])),
            mem_case("lw negative offset", load(-16, 2), &[(6, DATA + 16)], DATA, Next(&[(5, 0x017f_ff80)])),
            mem_case("lw zero memory", load(0, 2), &[(6, FRESH)], FRESH, Next(&[(5, 0)])),
            mem_case("lw into x0", i(0, 6, 2, 0, OPCODE_LOAD), AT_DATA, DATA, Next(&[])),
            mem_case("lw of the instruction", load(0, 2), &[(6, PC)], PC, Next(&[(5, 0x0003_2283)])),
            case("load funct3 3", load(0, 3), AT_DATA, Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("load funct3 6", load(0, 6), AT_DATA, Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("lw misaligned", load(2, 2), AT_DATA, Fault(FAULT_MISALIGNED_ACCESS)),
            case("lh misaligned", load(1, 1), AT_DATA, Fault(FAULT_MISALIGNED_ACCESS)),
            case("lhu misaligned", load(3, 5), AT_DATA, Fault(FAULT_MISALIGNED_ACCESS)),
            case("lw guard page", load(-4, 2), &[(6, 0x1000)], Fault(FAULT_UNMAPPED_ACCESS)),
            case("lb address 0", load(0, 0), &[], Fault(FAULT_UNMAPPED_ACCESS)),
            case("lw misaligned before guard", load(1, 2), &[], Fault(FAULT_MISALIGNED_ACCESS)),
            case("lw into x0 still faults", i(0, 6, 2, 0, OPCODE_LOAD), &[(6, 0xffc)], Fault(FAULT_UNMAPPED_ACCESS)),
            mem_case("sw", store(4, 2), AT_DATA, DATA, Store(DATA + 4, &[0x44, 0x33, 0x22, 0x11])),
            mem_case("sh", store(30, 1), AT_DATA, DATA + 30, Store(DATA + 30, &[0x44, 0x33])),
            mem_case("sb", store(5, 0), AT_DATA, DATA, Store(DATA + 5, &[0x44])),
            mem_case("sw to zero memory", store(-4, 2), &[(6, FRESH + 4), (7, 9)], FRESH, Store(FRESH, &[9, 0, 0, 0])),
            mem_case("sw of x0", s(0, 0, 6, 2), AT_DATA, DATA, Store(DATA, &[0, 0, 0, 0])),
            mem_case("sw over the instruction", store(0, 2), &[(6, PC), (7, 1)], PC, Store(PC, &[1, 0, 0, 0])),
            case("store funct3 3", store(0, 3), AT_DATA, Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("store funct3 4", store(0, 4), AT_DATA, Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("sh misaligned", store(1, 1), AT_DATA, Fault(FAULT_MISALIGNED_ACCESS)),
            case("sw misaligned", store(6, 2), AT_DATA, Fault(FAULT_MISALIGNED_ACCESS)),
            case("sb guard page", store(-1, 0), &[(6, 0x1000)], Fault(FAULT_UNMAPPED_ACCESS)),
            case("sw wraps into the guard page", store(-4, 2), &[(6, 4)], Fault(FAULT_UNMAPPED_ACCESS)),
        ]);
    }

    #[test]
    #[rustfmt::skip] // One case a line: the table reads better than the formatter's layout.
    fn misc_mem_system_and_illegal_words() {
        run_cases(&[
            case("fence", 0x0ff0_000f, &[], Next(&[])),
            case("fence.tso", 0x8330_000f, &[], Next(&[])),
            case("fence.i", 0x0000_100f, &[], Next(&[])),
            case("misc-mem funct3 2", 0x0000_200f, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("ebreak", WORD_EBREAK, &[], Fault(FAULT_BREAKPOINT)),
            case("csrrw", 0x3402_9073, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("rdcycle", 0xc000_2573, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("csrrwi", 0x3400_5073, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("mret", 0x3020_0073, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("wfi", 0x1050_0073, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("ecall with rd set", 0x0000_00f3, &[(17, 93)], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("all zero word", 0, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("compressed c.nop", 0x0000_0001, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("compressed over an addi", 0x0000_0012, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("compressed low bits 10", 0xffff_fffe, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("opcode 0x7f", u32::MAX, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("flw (LOAD-FP)", 0x0000_2007, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("amoadd (AMO)", 0x0000_202f, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
            case("OP-32 (RV64)", 0x0000_003b, &[], Fault(FAULT_ILLEGAL_INSTRUCTION)),
        ]);
    }

    #[test]
    #[rustfmt::skip] // One case a line: the table reads better than the formatter's layout.
    fn simple_ecalls() {
        let ebadf = (-9i32) as u32;
        run_cases(&[
            case("exit", WORD_ECALL, &[(17, 93), (10, 42)], Exit(42)),
            case("exit_group", WORD_ECALL, &[(17, 94), (10, u32::MAX)], Exit(u32::MAX)),
            case("write fd 1", WORD_ECALL, &[(17, 64), (10, 1), (11, 0), (12, 5)], Next(&[(10, 5)])),
            case("write fd 2", WORD_ECALL, &[(17, 64), (10, 2), (11, 3), (12, 0x7fff)], Next(&[(10, 0x7fff)])),
            case("write fd 3", WORD_ECALL, &[(17, 64), (10, 3), (12, 5)], Next(&[(10, ebadf)])),
            case("write fd 0", WORD_ECALL, &[(17, 64), (10, 0), (12, 5)], Next(&[(10, ebadf)])),
            case("unknown ecall 0", WORD_ECALL, &[], Fault(FAULT_UNKNOWN_ECALL)),
            case("unknown ecall 0x10002", WORD_ECALL, &[(17, 0x1_0002)], Fault(FAULT_UNKNOWN_ECALL)),
            case("unknown ecall a0 = 64", WORD_ECALL, &[(10, 64)], Fault(FAULT_UNKNOWN_ECALL)),
            // Chunk ecalls that fault before reading any extra.
            case("read_chunk misaligned buffer", WORD_ECALL, &[(17, 0x1_0000), (12, DATA + 16)], Fault(FAULT_MISALIGNED_ACCESS)),
            case("read_chunk misaligned before slot", WORD_ECALL, &[(17, 0x1_0000), (10, 99), (12, 1)], Fault(FAULT_MISALIGNED_ACCESS)),
            case("read_chunk guard buffer", WORD_ECALL, &[(17, 0x1_0000), (12, 0xfe0)], Fault(FAULT_UNMAPPED_ACCESS)),
            case("read_chunk slot 16", WORD_ECALL, &[(17, 0x1_0000), (10, 16), (12, DATA)], Fault(FAULT_INPUT_OUT_OF_RANGE)),
            case("read_chunk slot max", WORD_ECALL, &[(17, 0x1_0000), (10, u32::MAX), (12, DATA)], Fault(FAULT_INPUT_OUT_OF_RANGE)),
            case("write_chunk misaligned", WORD_ECALL, &[(17, 0x1_0001), (10, DATA + 4)], Fault(FAULT_MISALIGNED_ACCESS)),
            case("write_chunk guard", WORD_ECALL, &[(17, 0x1_0001), (10, 0x20)], Fault(FAULT_UNMAPPED_ACCESS)),
            case("write_chunk address 0", WORD_ECALL, &[(17, 0x1_0001)], Fault(FAULT_UNMAPPED_ACCESS)),
        ]);
    }

    #[test]
    fn fetch_faults_need_no_proof() {
        for (pc, code) in [
            (0x1002u32, FAULT_MISALIGNED_FETCH),
            (0x1001, FAULT_MISALIGNED_FETCH),
            (0x0002, FAULT_MISALIGNED_FETCH),
            (0x0ffc, FAULT_UNMAPPED_ACCESS),
            (0, FAULT_UNMAPPED_ACCESS),
        ] {
            let mut vm = Vm::new(0x13, &[(5, 1)]);
            vm.s.pc = pc;
            let got = verify_step(&vm.hash(), &vm.witness(&[], None));
            assert_eq!(got, Ok(expected(&vm, Fault(code))), "pc {pc:#x}");
            // An instruction proof there is one part too many.
            let mut extra = vm.witness(&[], None);
            extra.extend(vm.mem.memory_proof(PC));
            assert!(
                matches!(
                    verify_step(&vm.hash(), &extra),
                    Err(VerifyError::BadWitnessLength {
                        needed: 0,
                        offset: STATE_LEN,
                        ..
                    })
                ),
                "pc {pc:#x}"
            );
        }
    }

    #[test]
    fn halted_states_do_not_move() {
        for (status, code) in [(STATUS_EXITED, 3), (STATUS_FAULTED, FAULT_BREAKPOINT)] {
            let mut vm = Vm::new(0x13, &[(5, 1)]);
            vm.s.status = status;
            vm.s.exit_code = code;
            let h = vm.hash();
            assert_eq!(verify_step(&h, &vm.s.encode()), Ok(h), "status {status}");
            // It takes no instruction proof.
            let mut w = vm.s.encode().to_vec();
            w.extend(vm.mem.memory_proof(PC));
            assert!(matches!(
                verify_step(&h, &w),
                Err(VerifyError::BadWitnessLength { needed: 0, .. })
            ));
        }
        // And a machine that exits stays put afterwards.
        let vm = Vm::ecall(&[(17, 93), (10, 7)]);
        let post = verify_step(&vm.hash(), &vm.witness(&[], None)).unwrap();
        let mut exited = vm.s.clone();
        exited.step += 1;
        exited.status = STATUS_EXITED;
        exited.exit_code = 7;
        assert_eq!(post, keccak256(&exited.encode()));
        assert_eq!(verify_step(&post, &exited.encode()), Ok(post));
    }

    // ---- read_chunk ----------------------------------------------------------------------------

    /// A tensor: its header (length first) and its chunk tree (section 1.2).
    struct Tensor {
        header: Vec<u8>,
        chunks: SparseTree,
    }

    impl Tensor {
        fn new(data: &[u8], opaque: &[u8]) -> Self {
            let n = data.len().div_ceil(32) as u64;
            let depth = if n == 0 { 0 } else { ceil_log2(n) as usize };
            let mut chunks = SparseTree::new(depth);
            for (k, piece) in data.chunks(32).enumerate() {
                let mut leaf = [0u8; 32];
                leaf[..piece.len()].copy_from_slice(piece);
                chunks.set_leaf(k as u64, leaf);
            }
            let mut header = (data.len() as u32).to_be_bytes().to_vec();
            header.extend_from_slice(opaque);
            Self { header, chunks }
        }

        fn commitment(&self) -> Hash {
            keccak256(&[&self.header[..], &self.chunks.root()].concat())
        }

        /// `headerLen ‖ header ‖ dataRoot`.
        fn header_part(&self) -> Vec<u8> {
            let mut out = (self.header.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&self.header);
            out.extend_from_slice(&self.chunks.root());
            out
        }
    }

    /// Slot 2: 80 bytes (3 chunks, the last half zero padding) behind a 9-byte header; slot 0: one
    /// chunk; slot 7: a tensor of length 0.
    fn input_setup() -> (Vec<Tensor>, SparseTree) {
        let data: Vec<u8> = (1..=80).collect();
        let tensors = vec![
            Tensor::new(&data, b"f32:2x20"),
            Tensor::new(&[0xaa; 5], b""),
            Tensor::new(&[], b"empty"),
        ];
        let mut inputs = SparseTree::new(INPUT_DEPTH);
        for (slot, t) in [2u64, 0, 7].into_iter().zip(&tensors) {
            inputs.set_leaf(slot, t.commitment());
        }
        (tensors, inputs)
    }

    fn path_bytes(path: &[Hash]) -> Vec<u8> {
        path.concat()
    }

    fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out[at] ^= 1;
        out
    }

    #[test]
    fn read_chunk() {
        let (tensors, inputs) = input_setup();
        let big = &tensors[0];
        let read = |slot: u32, chunk: u32, dest: u32| {
            let mut vm = Vm::ecall(&[(17, ECALL_READ_CHUNK), (10, slot), (11, chunk), (12, dest)]);
            vm.s.input_root = inputs.root();
            vm
        };
        let slot_path = |slot: u64| path_bytes(&inputs.path(slot));
        let chunk_proof = |t: &Tensor, k: u64| t.chunks.proof(k);
        // The full extra of a successful read of chunk `k` of slot 2.
        let extra = |k: u64| [big.header_part(), slot_path(2), chunk_proof(big, k)].concat();

        // Successes: the chunk lands in the leaf at the destination.
        for (chunk, dest) in [(0u32, FRESH), (1, FRESH), (2, DATA), (2, PC)] {
            let vm = read(2, chunk, dest);
            let w = vm.witness(&extra(u64::from(chunk)), Some(dest));
            let mut mem = vm.mem.clone();
            mem.set_leaf(u64::from(dest >> 5), big.chunks.leaf(u64::from(chunk)));
            let want = vm.expect(|s| {
                s.mem_root = mem.root();
                s.pc += 4;
            });
            assert_eq!(
                verify_step(&vm.hash(), &w),
                Ok(want),
                "chunk {chunk} to {dest:#x}"
            );
        }
        // The last chunk is zero-padded, and a one-chunk tensor's data root is the chunk itself.
        assert_eq!(big.chunks.leaf(2)[16..], [0; 16]);
        let one = &tensors[1];
        assert_eq!(one.chunks.root(), one.chunks.leaf(0));
        let vm = read(0, 0, FRESH);
        let w = vm.witness(
            &[one.header_part(), slot_path(0), chunk_proof(one, 0)].concat(),
            Some(FRESH),
        );
        assert_eq!(one.chunks.proof(0).len(), 32, "depth 0: no path");
        let mut mem = vm.mem.clone();
        mem.set_leaf(u64::from(FRESH >> 5), one.chunks.leaf(0));
        let want = vm.expect(|s| {
            s.mem_root = mem.root();
            s.pc += 4;
        });
        assert_eq!(verify_step(&vm.hash(), &w), Ok(want), "one-chunk tensor");

        // Faults after the input proof: no chunk and no memory proof follow.
        let empty_slot = [vec![0, 0], slot_path(5)].concat();
        let out_of_range: &[(&str, u32, u32, Vec<u8>)] = &[
            (
                "chunk 3 of 3",
                2,
                3,
                [big.header_part(), slot_path(2)].concat(),
            ),
            (
                "chunk max",
                2,
                u32::MAX,
                [big.header_part(), slot_path(2)].concat(),
            ),
            (
                "chunk 1 of 1",
                0,
                1,
                [one.header_part(), slot_path(0)].concat(),
            ),
            ("empty slot", 5, 0, empty_slot.clone()),
            ("slot 15 empty", 15, 0, [vec![0, 0], slot_path(15)].concat()),
            (
                "tensor of length 0",
                7,
                0,
                [tensors[2].header_part(), slot_path(7)].concat(),
            ),
        ];
        for (name, slot, chunk, extra) in out_of_range {
            let vm = read(*slot, *chunk, FRESH);
            let got = verify_step(&vm.hash(), &vm.witness(extra, None));
            assert_eq!(
                got,
                Ok(expected(&vm, Fault(FAULT_INPUT_OUT_OF_RANGE))),
                "{name}"
            );
        }

        // Rejections.
        let header_len_at = 0;
        let data_root_at = 2 + big.header.len();
        let slot_path_at = data_root_at + 32;
        let chunk_at = slot_path_at + 32 * INPUT_DEPTH;
        let chunk_path_at = chunk_at + 32;
        let good = extra(1);
        let bad_input = |reason| VerifyError::BadInputProof { slot: 2, reason };
        let not_proven = "the slot's leaf does not prove against inputRoot";
        let bad_len = "header length is not 0 and not in 4..=1024";
        let mut short_header = good.clone();
        short_header[..2].copy_from_slice(&3u16.to_be_bytes());
        let mut long_header = good.clone();
        long_header[..2].copy_from_slice(&1025u16.to_be_bytes());
        let mut other_len = big.header_part();
        other_len[2..6].copy_from_slice(&96u32.to_be_bytes());
        let rejections: &[(&str, Vec<u8>, bool, VerifyError)] = &[
            ("header length 3", short_header, true, bad_input(bad_len)),
            ("header length 1025", long_header, true, bad_input(bad_len)),
            (
                "claims empty",
                [empty_slot.clone(), chunk_proof(big, 1)].concat(),
                true,
                bad_input(not_proven),
            ),
            (
                "flipped header length",
                flip(&good, header_len_at + 1),
                true,
                bad_input(not_proven),
            ),
            (
                "other tensor length",
                [other_len, slot_path(2), chunk_proof(big, 1)].concat(),
                true,
                bad_input(not_proven),
            ),
            (
                "flipped data root",
                flip(&good, data_root_at),
                true,
                bad_input(not_proven),
            ),
            (
                "flipped slot path",
                flip(&good, slot_path_at + 100),
                true,
                bad_input(not_proven),
            ),
            (
                "path of another slot",
                [big.header_part(), slot_path(3), chunk_proof(big, 1)].concat(),
                true,
                bad_input(not_proven),
            ),
            (
                "flipped chunk",
                flip(&good, chunk_at + 31),
                true,
                VerifyError::BadChunkProof { slot: 2, chunk: 1 },
            ),
            (
                "flipped chunk path",
                flip(&good, chunk_path_at + 32),
                true,
                VerifyError::BadChunkProof { slot: 2, chunk: 1 },
            ),
            (
                "another chunk",
                extra(2),
                true,
                VerifyError::BadChunkProof { slot: 2, chunk: 1 },
            ),
            (
                "no memory proof",
                good.clone(),
                false,
                VerifyError::BadWitnessLength {
                    what: "memory proof",
                    offset: STATE_LEN + MEMORY_PROOF_LEN + good.len(),
                    needed: MEMORY_PROOF_HEAD_LEN,
                    len: STATE_LEN + MEMORY_PROOF_LEN + good.len(),
                },
            ),
            (
                "no chunk",
                [big.header_part(), slot_path(2)].concat(),
                false,
                VerifyError::BadWitnessLength {
                    what: "input chunk",
                    offset: STATE_LEN + MEMORY_PROOF_LEN + chunk_at,
                    needed: 32,
                    len: STATE_LEN + MEMORY_PROOF_LEN + chunk_at,
                },
            ),
            (
                "no chunk path",
                good[..chunk_path_at].to_vec(),
                false,
                VerifyError::BadWitnessLength {
                    what: "input chunk path",
                    offset: STATE_LEN + MEMORY_PROOF_LEN + chunk_path_at,
                    needed: 64,
                    len: STATE_LEN + MEMORY_PROOF_LEN + chunk_path_at,
                },
            ),
        ];
        let vm = read(2, 1, FRESH);
        for (name, extra, with_memory, err) in rejections {
            let w = vm.witness(extra, with_memory.then_some(FRESH));
            assert_eq!(verify_step(&vm.hash(), &w), Err(err.clone()), "{name}");
        }
        let w = vm.witness(&good, Some(FRESH));
        let bad_memory = flip(&w, w.len() - 1);
        assert_eq!(
            verify_step(&vm.hash(), &bad_memory),
            Err(VerifyError::BadMemoryProof { addr: FRESH })
        );
        // A header of 1024 bytes is fine; the length is its first 4 bytes.
        let wide = Tensor::new(&[7; 40], &[0xee; 1020]);
        let mut inputs = SparseTree::new(INPUT_DEPTH);
        inputs.set_leaf(9, wide.commitment());
        let mut vm = Vm::ecall(&[(17, ECALL_READ_CHUNK), (10, 9), (11, 1), (12, FRESH)]);
        vm.s.input_root = inputs.root();
        let extra = [
            wide.header_part(),
            path_bytes(&inputs.path(9)),
            wide.chunks.proof(1),
        ]
        .concat();
        assert!(verify_step(&vm.hash(), &vm.witness(&extra, Some(FRESH))).is_ok());
    }

    // ---- write_chunk ---------------------------------------------------------------------------

    fn accumulator(count: u32, frontier: &[(usize, Hash)]) -> Vec<u8> {
        let mut out = count.to_be_bytes().to_vec();
        for h in 0..OUTPUT_DEPTH {
            let entry = frontier
                .iter()
                .find(|(k, _)| *k == h)
                .map_or([0; 32], |e| e.1);
            out.extend_from_slice(&entry);
        }
        out
    }

    #[test]
    fn write_chunk() {
        let chunk = data_leaf();
        let (x, y) = ([0x11; 32], [0x22; 32]);
        // (before, after): the accumulators around appending `chunk`, written out by hand.
        let appends: &[(&str, Vec<u8>, Vec<u8>)] = &[
            ("first", accumulator(0, &[]), accumulator(1, &[(0, chunk)])),
            (
                "second",
                accumulator(1, &[(0, x)]),
                accumulator(2, &[(0, x), (1, hash_pair(&x, &chunk))]),
            ),
            (
                "third keeps frontier[1]",
                accumulator(2, &[(0, x), (1, y)]),
                accumulator(3, &[(0, chunk), (1, y)]),
            ),
            (
                "fourth",
                accumulator(3, &[(0, x), (1, y)]),
                accumulator(
                    4,
                    &[(0, x), (1, y), (2, hash_pair(&y, &hash_pair(&x, &chunk)))],
                ),
            ),
            (
                "last one that fits",
                accumulator(OUTPUT_CAPACITY - 1, &[(1, x)]),
                accumulator(OUTPUT_CAPACITY, &[(0, chunk), (1, x)]),
            ),
        ];
        for (name, before, after) in appends {
            let mut vm = Vm::ecall(&[(17, ECALL_WRITE_CHUNK), (10, DATA)]);
            vm.s.output_acc = keccak256(before);
            let got = verify_step(&vm.hash(), &vm.witness(before, Some(DATA)));
            let want = vm.expect(|s| {
                s.output_acc = keccak256(after);
                s.pc += 4;
            });
            assert_eq!(got, Ok(want), "{name}");
        }

        // Full: the accumulator is read, the memory proof is not.
        let full = accumulator(OUTPUT_CAPACITY, &[(0, x)]);
        let mut vm = Vm::ecall(&[(17, ECALL_WRITE_CHUNK), (10, DATA)]);
        vm.s.output_acc = keccak256(&full);
        assert_eq!(
            verify_step(&vm.hash(), &vm.witness(&full, None)),
            Ok(expected(&vm, Fault(FAULT_OUTPUT_FULL)))
        );
        assert!(matches!(
            verify_step(&vm.hash(), &vm.witness(&full, Some(DATA))),
            Err(VerifyError::BadWitnessLength { needed: 0, .. })
        ));

        // Rejections.
        let vm = Vm::ecall(&[(17, ECALL_WRITE_CHUNK), (10, DATA)]);
        let empty = EMPTY_ACCUMULATOR.to_vec();
        let good = vm.witness(&empty, Some(DATA));
        let acc_at = STATE_LEN + MEMORY_PROOF_LEN;
        let rejections: &[(&str, Vec<u8>, VerifyError)] = &[
            (
                "flipped count",
                flip(&good, acc_at + 3),
                VerifyError::BadAccumulator,
            ),
            (
                "flipped frontier",
                flip(&good, acc_at + 500),
                VerifyError::BadAccumulator,
            ),
            (
                "another accumulator",
                vm.witness(&accumulator(1, &[(0, x)]), Some(DATA)),
                VerifyError::BadAccumulator,
            ),
            (
                "flipped memory leaf",
                flip(&good, acc_at + ACCUMULATOR_LEN),
                VerifyError::BadMemoryProof { addr: DATA },
            ),
            (
                "flipped memory path",
                flip(&good, good.len() - 1),
                VerifyError::BadMemoryProof { addr: DATA },
            ),
            (
                "no accumulator",
                vm.witness(&[], None),
                VerifyError::BadWitnessLength {
                    what: "output accumulator",
                    offset: acc_at,
                    needed: ACCUMULATOR_LEN,
                    len: acc_at,
                },
            ),
            (
                "no memory proof",
                vm.witness(&empty, None),
                VerifyError::BadWitnessLength {
                    what: "memory proof",
                    offset: acc_at + ACCUMULATOR_LEN,
                    needed: MEMORY_PROOF_HEAD_LEN,
                    len: acc_at + ACCUMULATOR_LEN,
                },
            ),
        ];
        for (name, w, err) in rejections {
            assert_eq!(verify_step(&vm.hash(), w), Err(err.clone()), "{name}");
        }
    }

    // ---- Witness rejections --------------------------------------------------------------------

    #[test]
    fn rejected_witnesses() {
        let addi = Vm::new(op_imm(1, 0), &[]);
        let lw = Vm::new(load(0, 2), &[(6, DATA)]);
        let sw = Vm::new(store(0, 2), &[(6, DATA), (7, 5)]);
        let mut bad_status = Vm::new(0x13, &[]);
        bad_status.s.status = 3;
        let mut status_ff = Vm::new(0x13, &[]);
        status_ff.s.status = 0xff;
        let insn_at = STATE_LEN;
        let data_at = STATE_LEN + MEMORY_PROOF_LEN;
        let full = STATE_LEN + 2 * MEMORY_PROOF_LEN;
        let bad_insn = VerifyError::BadInstructionProof { pc: PC };
        let bad_mem = VerifyError::BadMemoryProof { addr: DATA };
        let length = |what, offset, needed, len| VerifyError::BadWitnessLength {
            what,
            offset,
            needed,
            len,
        };
        let wrong_hash = VerifyError::BadPreState {
            reason: "it does not hash to the pre-state hash",
        };
        let invalid_status = VerifyError::BadPreState {
            reason: "its status byte is not 0, 1 or 2",
        };
        let aw = addi.witness(&[], None);
        let lww = lw.witness(&[], Some(DATA));
        let sww = sw.witness(&[], Some(DATA));
        let cases: &[(&str, Hash, Vec<u8>, VerifyError)] = &[
            (
                "wrong pre-state hash",
                [0; 32],
                aw.clone(),
                wrong_hash.clone(),
            ),
            (
                "hash of another state",
                lw.hash(),
                aw.clone(),
                wrong_hash.clone(),
            ),
            ("flipped pre-state", addi.hash(), flip(&aw, 200), wrong_hash),
            (
                "status 3",
                bad_status.hash(),
                bad_status.s.encode().to_vec(),
                invalid_status.clone(),
            ),
            (
                "status 0xff",
                status_ff.hash(),
                status_ff.s.encode().to_vec(),
                invalid_status,
            ),
            (
                "empty witness",
                addi.hash(),
                vec![],
                length("pre-state", 0, STATE_LEN, 0),
            ),
            (
                "truncated pre-state",
                addi.hash(),
                aw[..100].to_vec(),
                length("pre-state", 0, STATE_LEN, 100),
            ),
            (
                "no instruction proof",
                addi.hash(),
                aw[..STATE_LEN].to_vec(),
                length(
                    "instruction proof",
                    STATE_LEN,
                    MEMORY_PROOF_HEAD_LEN,
                    STATE_LEN,
                ),
            ),
            (
                "instruction proof one byte short",
                addi.hash(),
                aw[..aw.len() - 1].to_vec(),
                length(
                    "instruction proof",
                    STATE_LEN + MEMORY_PROOF_HEAD_LEN,
                    32 * MEMORY_DEPTH,
                    aw.len() - 1,
                ),
            ),
            (
                "trailing byte",
                addi.hash(),
                [&aw[..], &[0]].concat(),
                length("end of witness", aw.len(), 0, aw.len() + 1),
            ),
            (
                "addi with a memory proof",
                addi.hash(),
                addi.witness(&[], Some(DATA)),
                length("end of witness", aw.len(), 0, full),
            ),
            (
                "flipped instruction leaf",
                addi.hash(),
                flip(&aw, insn_at),
                bad_insn.clone(),
            ),
            (
                "flipped instruction mask",
                addi.hash(),
                flip(&aw, insn_at + 32),
                bad_insn.clone(),
            ),
            (
                "flipped instruction path start",
                addi.hash(),
                flip(&aw, insn_at + MEMORY_PROOF_HEAD_LEN),
                bad_insn.clone(),
            ),
            (
                "flipped instruction path end",
                addi.hash(),
                flip(&aw, aw.len() - 1),
                bad_insn.clone(),
            ),
            (
                "instruction proof of another leaf",
                addi.hash(),
                [&aw[..STATE_LEN], &addi.mem.memory_proof(DATA)].concat(),
                bad_insn,
            ),
            (
                "lw without memory proof",
                lw.hash(),
                lww[..data_at].to_vec(),
                length("memory proof", data_at, MEMORY_PROOF_HEAD_LEN, data_at),
            ),
            (
                "lw memory proof short",
                lw.hash(),
                lww[..full - 32].to_vec(),
                length(
                    "memory proof",
                    data_at + MEMORY_PROOF_HEAD_LEN,
                    32 * MEMORY_DEPTH,
                    full - 32,
                ),
            ),
            (
                "lw trailing byte",
                lw.hash(),
                [&lww[..], &[0]].concat(),
                length("end of witness", full, 0, full + 1),
            ),
            (
                "lw flipped memory leaf",
                lw.hash(),
                flip(&lww, data_at + 3),
                bad_mem.clone(),
            ),
            (
                "lw flipped memory path",
                lw.hash(),
                flip(&lww, data_at + 32 * 20),
                bad_mem.clone(),
            ),
            (
                "lw proof of another leaf",
                lw.hash(),
                [&lww[..data_at], &lw.mem.memory_proof(FRESH)].concat(),
                bad_mem.clone(),
            ),
            (
                "sw flipped memory leaf",
                sw.hash(),
                flip(&sww, data_at + 8),
                bad_mem.clone(),
            ),
            (
                "sw flipped memory path",
                sw.hash(),
                flip(&sww, full - 1),
                bad_mem,
            ),
        ];
        for (name, pre, w, err) in cases {
            assert_eq!(verify_step(pre, w), Err(err.clone()), "{name}");
        }
    }

    /// Siblings left out by the mask are the zero hashes of their level: a mask that leaves out a
    /// sibling that is not zero, names a level above the tree, or disagrees with the number of
    /// siblings that follow is rejected; a zero sibling given in full is fine.
    #[test]
    fn masked_memory_proofs() {
        let addi = Vm::new(op_imm(1, 0), &[]);
        let lw = Vm::new(load(0, 2), &[(6, DATA)]);
        let sw = Vm::new(store(0, 2), &[(6, DATA), (7, 5)]);
        // PC's and DATA's leaves meet at level 9: each is the other's only non-zero sibling.
        let mask = MEMORY_MASK_LEVELS & !(1 << 8);
        let state = |vm: &Vm| vm.s.encode().to_vec();
        let insn = |vm: &Vm, mask: u32| vm.mem.masked_memory_proof(PC, mask);
        let data = |vm: &Vm, mask: u32| vm.mem.masked_memory_proof(DATA, mask);
        let with_mask =
            |proof: Vec<u8>, mask: u32| [&proof[..32], &mask.to_be_bytes(), &proof[36..]].concat();
        let bad_insn = Err(VerifyError::BadInstructionProof { pc: PC });
        let bad_mem = Err(VerifyError::BadMemoryProof { addr: DATA });
        let addi_post = Ok(addi.expect(|s| {
            s.regs[5] = 1;
            s.advance();
        }));
        let lw_post = verify_step(&lw.hash(), &lw.witness(&[], Some(DATA)));
        let sw_post = verify_step(&sw.hash(), &sw.witness(&[], Some(DATA)));
        assert!(lw_post.is_ok() && sw_post.is_ok());
        let cases: Vec<(&str, &Vm, Vec<u8>, Result<Hash, VerifyError>)> = vec![
            (
                "every zero sibling left out",
                &addi,
                [state(&addi), insn(&addi, mask)].concat(),
                addi_post.clone(),
            ),
            (
                "a zero sibling given in full",
                &addi,
                [state(&addi), insn(&addi, mask & !(1 << 26))].concat(),
                addi_post.clone(),
            ),
            (
                "lw, both proofs masked",
                &lw,
                [state(&lw), insn(&lw, mask), data(&lw, mask)].concat(),
                lw_post.clone(),
            ),
            (
                "sw, both proofs masked",
                &sw,
                [state(&sw), insn(&sw, mask), data(&sw, mask)].concat(),
                sw_post.clone(),
            ),
            (
                "a non-zero sibling left out",
                &addi,
                [state(&addi), insn(&addi, MEMORY_MASK_LEVELS)].concat(),
                bad_insn.clone(),
            ),
            (
                "the mask marks the non-zero sibling that follows",
                &addi,
                [
                    state(&addi),
                    with_mask(insn(&addi, mask), MEMORY_MASK_LEVELS),
                ]
                .concat(),
                bad_insn.clone(),
            ),
            (
                "mask bit 27",
                &addi,
                [state(&addi), with_mask(insn(&addi, mask), mask | 1 << 27)].concat(),
                bad_insn.clone(),
            ),
            (
                "mask bit 31",
                &addi,
                [state(&addi), with_mask(insn(&addi, mask), mask | 1 << 31)].concat(),
                bad_insn.clone(),
            ),
            (
                "the mask wants one sibling more than given",
                &addi,
                [state(&addi), with_mask(insn(&addi, mask), mask & !1)].concat(),
                Err(VerifyError::BadWitnessLength {
                    what: "instruction proof",
                    offset: STATE_LEN + MEMORY_PROOF_HEAD_LEN,
                    needed: 64,
                    len: STATE_LEN + MEMORY_PROOF_HEAD_LEN + 32,
                }),
            ),
            (
                "one sibling more than the mask wants",
                &addi,
                [state(&addi), insn(&addi, mask), vec![0; 32]].concat(),
                Err(VerifyError::BadWitnessLength {
                    what: "end of witness",
                    offset: STATE_LEN + MEMORY_PROOF_HEAD_LEN + 32,
                    needed: 0,
                    len: STATE_LEN + MEMORY_PROOF_HEAD_LEN + 64,
                }),
            ),
            (
                "lw, data mask bit 27",
                &lw,
                [
                    state(&lw),
                    insn(&lw, mask),
                    with_mask(data(&lw, mask), mask | 1 << 27),
                ]
                .concat(),
                bad_mem.clone(),
            ),
            (
                "lw, a non-zero data sibling left out",
                &lw,
                [state(&lw), insn(&lw, mask), data(&lw, MEMORY_MASK_LEVELS)].concat(),
                bad_mem.clone(),
            ),
            (
                "sw, a non-zero data sibling left out",
                &sw,
                [state(&sw), insn(&sw, mask), data(&sw, MEMORY_MASK_LEVELS)].concat(),
                bad_mem.clone(),
            ),
            (
                "sw, data mask bit 30",
                &sw,
                [
                    state(&sw),
                    insn(&sw, mask),
                    with_mask(data(&sw, mask), 1 << 30),
                ]
                .concat(),
                bad_mem,
            ),
        ];
        for (name, vm, w, want) in cases {
            assert_eq!(verify_step(&vm.hash(), &w), want, "{name}");
        }
    }

    /// A bit flip in any 32-byte word of a valid witness is rejected (it never yields another
    /// post-state). The full sweep over every bit is in `vm/tests/instructions.rs`.
    #[test]
    fn bit_flips_are_rejected() {
        let (tensors, inputs) = input_setup();
        let mut read = Vm::ecall(&[(17, ECALL_READ_CHUNK), (10, 2), (11, 2), (12, DATA)]);
        read.s.input_root = inputs.root();
        let read_extra = [
            tensors[0].header_part(),
            path_bytes(&inputs.path(2)),
            tensors[0].chunks.proof(2),
        ]
        .concat();
        let write = Vm::ecall(&[(17, ECALL_WRITE_CHUNK), (10, DATA)]);
        let lw = Vm::new(load(4, 2), &[(6, DATA)]);
        let sw = Vm::new(store(4, 2), &[(6, DATA), (7, 5)]);
        let witnesses = [
            ("lw", lw.hash(), lw.witness(&[], Some(DATA))),
            ("sw", sw.hash(), sw.witness(&[], Some(DATA))),
            (
                "read_chunk",
                read.hash(),
                read.witness(&read_extra, Some(DATA)),
            ),
            (
                "write_chunk",
                write.hash(),
                write.witness(&EMPTY_ACCUMULATOR, Some(DATA)),
            ),
        ];
        for (name, pre, w) in witnesses {
            assert!(verify_step(&pre, &w).is_ok(), "{name}");
            for word in 0..w.len().div_ceil(32) {
                let bit = (256 * word + word * 37 % 256).min(w.len() * 8 - 1);
                let mut bad = w.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(verify_step(&pre, &bad).is_err(), "{name}: bit {bit}");
            }
        }
    }

    // ---- Encoding and messages -----------------------------------------------------------------

    #[test]
    fn state_encoding_layout() {
        let mut regs = [0u32; 32];
        for (r, reg) in regs.iter_mut().enumerate() {
            *reg = 0x0101_0101 * r as u32;
        }
        regs[0] = 0;
        let s = State {
            pc: 0x1122_3344,
            regs,
            mem_root: [0xaa; 32],
            step: 0x0102_0304_0506_0708,
            status: 2,
            exit_code: 0xdead_beef,
            input_root: [0xbb; 32],
            output_acc: [0xcc; 32],
        };
        let mut want = vec![0x11, 0x22, 0x33, 0x44];
        for r in 1..32u8 {
            want.extend_from_slice(&[r; 4]);
        }
        want.extend_from_slice(&[0xaa; 32]);
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        want.push(2);
        want.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        want.extend_from_slice(&[0xbb; 32]);
        want.extend_from_slice(&[0xcc; 32]);
        assert_eq!(want.len(), STATE_LEN);
        assert_eq!(s.encode().to_vec(), want);
        assert_eq!(State::decode(&want), s);
    }

    #[test]
    fn error_messages_say_where() {
        let cases = [
            (
                VerifyError::BadWitnessLength {
                    what: "memory proof",
                    offset: 1133,
                    needed: 896,
                    len: 1140,
                },
                "bad witness length: memory proof needs 896 bytes at offset 1133, but the witness \
                 is 1140 bytes",
            ),
            (
                VerifyError::BadWitnessLength {
                    what: "end of witness",
                    offset: 237,
                    needed: 0,
                    len: 240,
                },
                "bad witness length: 3 trailing bytes after offset 237 (witness is 240 bytes)",
            ),
            (
                VerifyError::BadInstructionProof { pc: 0x1000 },
                "bad instruction proof: the leaf holding pc 0x00001000 does not prove against \
                 memRoot",
            ),
            (
                VerifyError::BadChunkProof { slot: 2, chunk: 1 },
                "bad chunk proof: chunk 1 of slot 2 does not prove against its data root",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn mext_table() {
        let cases = [
            (0, 0xffff_ffffu32, 0xffff_ffffu32, 1u32),
            (1, INT_MIN, 1, u32::MAX),
            (2, INT_MIN, u32::MAX, 0x8000_0000),
            (3, INT_MIN, 2, 1),
            (4, 0, 0, u32::MAX),
            (5, 0, 0, u32::MAX),
            (6, 0, 0, 0),
            (7, 0, 0, 0),
            (4, INT_MIN, 1, INT_MIN),
            (6, INT_MIN, 2, 0),
        ];
        for (f3, a, b, want) in cases {
            assert_eq!(execute_mext(f3, a, b), want, "funct3 {f3} {a:#x} {b:#x}");
        }
    }
}
