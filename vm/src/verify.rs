//! `verify_step`: the Rust twin of the Solidity step contract.
//!
//! Written from `docs/protocol.md` alone, on purpose apart from the machine's own code path (it shares
//! only the keccak primitives): it reads the witness front to back, proves every leaf it uses, applies
//! the one instruction and returns the post-state hash. The functions carry the names the Solidity
//! contract uses, so the two can be read side by side.

use crate::hash::{ceil_log2, hash_pair, keccak256, root_from_path, Hash, MEMORY_DEPTH};

const STATE_LEN: usize = 237;
const GUARD_END: u32 = 0x1000;
const INPUT_DEPTH: usize = 4;
const OUTPUT_DEPTH: usize = 27;
const OUTPUT_MAX: u32 = (1 << OUTPUT_DEPTH) - 1;
const MAX_HEADER: usize = 1024;

const FAULT_ILLEGAL: u32 = 1;
const FAULT_BREAKPOINT: u32 = 2;
const FAULT_MISALIGNED_FETCH: u32 = 3;
const FAULT_MISALIGNED_ACCESS: u32 = 4;
const FAULT_UNMAPPED: u32 = 5;
const FAULT_UNKNOWN_ECALL: u32 = 6;
const FAULT_INPUT_RANGE: u32 = 7;
const FAULT_OUTPUT_FULL: u32 = 8;

/// Why a witness is rejected. The Solidity contract reverts with a custom error of the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The pre-state does not hash to the given hash, or its status byte is invalid.
    #[error("bad pre-state: {0}")]
    BadPreState(&'static str),
    /// The witness ends early or has bytes left over.
    #[error("bad witness length: {what} at offset {offset} (witness is {len} bytes)")]
    BadWitnessLength {
        /// What was expected there.
        what: &'static str,
        /// Where.
        offset: usize,
        /// The witness length.
        len: usize,
    },
    /// The instruction leaf does not prove against the memory root.
    #[error("bad instruction proof for pc {0:#010x}")]
    BadInstructionProof(u32),
    /// The data leaf does not prove against the memory root.
    #[error("bad memory proof for address {0:#010x}")]
    BadMemoryProof(u32),
    /// The slot's commitment does not prove against the input root, or the header is malformed.
    #[error("bad input proof for slot {0}")]
    BadInputProof(u32),
    /// The chunk does not prove against the tensor's data root.
    #[error("bad chunk proof for chunk {0}")]
    BadChunkProof(u32),
    /// The accumulator does not hash to the state's output accumulator.
    #[error("bad output accumulator")]
    BadAccumulator,
}

/// Reads the witness front to back.
struct Cursor<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], VerifyError> {
        let bytes =
            self.data
                .get(self.offset..self.offset + n)
                .ok_or(VerifyError::BadWitnessLength {
                    what,
                    offset: self.offset,
                    len: self.data.len(),
                })?;
        self.offset += n;
        Ok(bytes)
    }

    fn hash(&mut self, what: &'static str) -> Result<Hash, VerifyError> {
        Ok(self.take(32, what)?.try_into().expect("32 bytes"))
    }

    fn hashes<const N: usize>(&mut self, what: &'static str) -> Result<[Hash; N], VerifyError> {
        let mut out = [[0u8; 32]; N];
        for h in out.iter_mut() {
            *h = self.hash(what)?;
        }
        Ok(out)
    }

    fn finish(&self) -> Result<(), VerifyError> {
        if self.offset == self.data.len() {
            Ok(())
        } else {
            Err(VerifyError::BadWitnessLength {
                what: "end of witness (trailing bytes)",
                offset: self.offset,
                len: self.data.len(),
            })
        }
    }
}

/// The decoded pre-state, mutated into the post-state.
struct State {
    pc: u32,
    regs: [u32; 32],
    mem_root: Hash,
    step: u64,
    status: u8,
    exit_code: u32,
    input_root: Hash,
    output_acc: Hash,
}

impl State {
    fn decode(b: &[u8]) -> Self {
        let word = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().expect("4"));
        let hash = |o: usize| -> Hash { b[o..o + 32].try_into().expect("32") };
        let mut regs = [0u32; 32];
        for (r, reg) in regs.iter_mut().enumerate().skip(1) {
            *reg = word(4 * r);
        }
        Self {
            pc: word(0),
            regs,
            mem_root: hash(128),
            step: u64::from_be_bytes(b[160..168].try_into().expect("8")),
            status: b[168],
            exit_code: word(169),
            input_root: hash(173),
            output_acc: hash(205),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATE_LEN);
        out.extend_from_slice(&self.pc.to_be_bytes());
        for reg in &self.regs[1..] {
            out.extend_from_slice(&reg.to_be_bytes());
        }
        out.extend_from_slice(&self.mem_root);
        out.extend_from_slice(&self.step.to_be_bytes());
        out.push(self.status);
        out.extend_from_slice(&self.exit_code.to_be_bytes());
        out.extend_from_slice(&self.input_root);
        out.extend_from_slice(&self.output_acc);
        out
    }

    fn set_reg(&mut self, rd: u32, value: u32) {
        if rd != 0 {
            self.regs[rd as usize] = value;
        }
    }

    fn fault(&mut self, code: u32) {
        self.status = 2;
        self.exit_code = code;
    }
}

/// A memory leaf proven against the state's memory root, which can be rewritten along its path.
struct Leaf {
    addr: u32,
    bytes: [u8; 32],
    path: [Hash; MEMORY_DEPTH],
}

impl Leaf {
    fn new_root(&self, bytes: &[u8; 32]) -> Hash {
        root_from_path(bytes, u64::from(self.addr >> 5), &self.path)
    }
}

/// Reads a memory proof for `addr` and checks it against `root`.
fn verify_memory_proof(c: &mut Cursor<'_>, root: &Hash, addr: u32) -> Result<Leaf, VerifyError> {
    let bytes = c.hash("memory proof leaf")?;
    let path = c.hashes::<MEMORY_DEPTH>("memory proof path")?;
    let leaf = Leaf { addr, bytes, path };
    if leaf.new_root(&bytes) != *root {
        return Err(VerifyError::BadMemoryProof(addr));
    }
    Ok(leaf)
}

/// Computes the post-state hash of one step from the pre-state hash and the step's witness.
pub fn verify_step(pre_state_hash: &Hash, witness: &[u8]) -> Result<Hash, VerifyError> {
    let mut c = Cursor {
        data: witness,
        offset: 0,
    };
    let encoded = c.take(STATE_LEN, "pre-state")?;
    if keccak256(encoded) != *pre_state_hash {
        return Err(VerifyError::BadPreState(
            "it does not hash to the pre-state hash",
        ));
    }
    let mut s = State::decode(encoded);
    if s.status > 2 {
        return Err(VerifyError::BadPreState("status byte is not 0, 1 or 2"));
    }
    if s.status == 0 {
        s.step += 1;
        execute_step(&mut s, &mut c)?;
    }
    c.finish()?;
    Ok(keccak256(&s.encode()))
}

fn execute_step(s: &mut State, c: &mut Cursor<'_>) -> Result<(), VerifyError> {
    if s.pc % 4 != 0 {
        s.fault(FAULT_MISALIGNED_FETCH);
        return Ok(());
    }
    if s.pc < GUARD_END {
        s.fault(FAULT_UNMAPPED);
        return Ok(());
    }
    let leaf = verify_memory_proof(c, &s.mem_root, s.pc)
        .map_err(|_| VerifyError::BadInstructionProof(s.pc))?;
    let o = (s.pc % 32) as usize;
    let insn = u32::from_le_bytes(leaf.bytes[o..o + 4].try_into().expect("4"));
    let opcode = insn & 0x7f;
    if insn & 3 != 3 {
        s.fault(FAULT_ILLEGAL);
        return Ok(());
    }
    match opcode {
        0b0110111 | 0b0010111 => execute_lui_auipc(s, insn),
        0b1101111 => execute_jal(s, insn),
        0b1100111 => execute_jalr(s, insn),
        0b1100011 => execute_branch(s, insn),
        0b0000011 => return execute_load(s, c, insn),
        0b0100011 => return execute_store(s, c, insn),
        0b0010011 => execute_op_imm(s, insn),
        0b0110011 => execute_op(s, insn),
        0b0001111 => execute_misc_mem(s, insn),
        0b1110011 => return execute_system(s, c, insn),
        _ => s.fault(FAULT_ILLEGAL),
    }
    Ok(())
}

fn rd(insn: u32) -> u32 {
    (insn >> 7) & 31
}
fn funct3(insn: u32) -> u32 {
    (insn >> 12) & 7
}
fn rs1(s: &State, insn: u32) -> u32 {
    s.regs[((insn >> 15) & 31) as usize]
}
fn rs2(s: &State, insn: u32) -> u32 {
    s.regs[((insn >> 20) & 31) as usize]
}
fn imm_i(insn: u32) -> u32 {
    ((insn as i32) >> 20) as u32
}
fn imm_s(insn: u32) -> u32 {
    (((insn as i32) >> 20) as u32 & !31) | ((insn >> 7) & 31)
}

fn execute_lui_auipc(s: &mut State, insn: u32) {
    let upper = insn & 0xffff_f000;
    let value = if insn & 0x7f == 0b0110111 {
        upper
    } else {
        s.pc.wrapping_add(upper)
    };
    s.set_reg(rd(insn), value);
    s.pc = s.pc.wrapping_add(4);
}

fn execute_jal(s: &mut State, insn: u32) {
    let imm = (((insn as i32) >> 11) as u32 & 0xfff0_0000)
        | (insn & 0x000f_f000)
        | ((insn >> 9) & 0x800)
        | ((insn >> 20) & 0x7fe);
    let target = s.pc.wrapping_add(imm);
    s.set_reg(rd(insn), s.pc.wrapping_add(4));
    s.pc = target;
}

fn execute_jalr(s: &mut State, insn: u32) {
    if funct3(insn) != 0 {
        return s.fault(FAULT_ILLEGAL);
    }
    let target = rs1(s, insn).wrapping_add(imm_i(insn)) & !1;
    s.set_reg(rd(insn), s.pc.wrapping_add(4));
    s.pc = target;
}

fn execute_branch(s: &mut State, insn: u32) {
    let (a, b) = (rs1(s, insn), rs2(s, insn));
    let taken = match funct3(insn) {
        0 => a == b,
        1 => a != b,
        4 => (a as i32) < (b as i32),
        5 => (a as i32) >= (b as i32),
        6 => a < b,
        7 => a >= b,
        _ => return s.fault(FAULT_ILLEGAL),
    };
    let imm = (((insn as i32) >> 19) as u32 & 0xffff_f000)
        | ((insn << 4) & 0x800)
        | ((insn >> 20) & 0x7e0)
        | ((insn >> 7) & 0x1e);
    s.pc = s.pc.wrapping_add(if taken { imm } else { 4 });
}

/// Alignment then guard-page check of a data access; the fault code if it fails.
fn access_fault(addr: u32, width: u32) -> Option<u32> {
    if addr % width != 0 {
        Some(FAULT_MISALIGNED_ACCESS)
    } else if addr < GUARD_END {
        Some(FAULT_UNMAPPED)
    } else {
        None
    }
}

fn execute_load(s: &mut State, c: &mut Cursor<'_>, insn: u32) -> Result<(), VerifyError> {
    let (width, signed) = match funct3(insn) {
        0 => (1, true),
        1 => (2, true),
        2 => (4, false),
        4 => (1, false),
        5 => (2, false),
        _ => {
            s.fault(FAULT_ILLEGAL);
            return Ok(());
        }
    };
    let addr = rs1(s, insn).wrapping_add(imm_i(insn));
    if let Some(code) = access_fault(addr, width) {
        s.fault(code);
        return Ok(());
    }
    let leaf = verify_memory_proof(c, &s.mem_root, addr)?;
    let o = (addr % 32) as usize;
    let mut value = 0u32;
    for k in 0..width as usize {
        value |= u32::from(leaf.bytes[o + k]) << (8 * k);
    }
    if signed {
        let shift = 32 - 8 * width;
        value = (((value << shift) as i32) >> shift) as u32;
    }
    s.set_reg(rd(insn), value);
    s.pc = s.pc.wrapping_add(4);
    Ok(())
}

fn execute_store(s: &mut State, c: &mut Cursor<'_>, insn: u32) -> Result<(), VerifyError> {
    let width = match funct3(insn) {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => {
            s.fault(FAULT_ILLEGAL);
            return Ok(());
        }
    };
    let addr = rs1(s, insn).wrapping_add(imm_s(insn));
    if let Some(code) = access_fault(addr, width) {
        s.fault(code);
        return Ok(());
    }
    let leaf = verify_memory_proof(c, &s.mem_root, addr)?;
    let mut bytes = leaf.bytes;
    let value = rs2(s, insn).to_le_bytes();
    let o = (addr % 32) as usize;
    bytes[o..o + width as usize].copy_from_slice(&value[..width as usize]);
    s.mem_root = leaf.new_root(&bytes);
    s.pc = s.pc.wrapping_add(4);
    Ok(())
}

fn execute_op_imm(s: &mut State, insn: u32) {
    let a = rs1(s, insn);
    let imm = imm_i(insn);
    let shamt = imm & 31;
    let funct7 = insn >> 25;
    let value = match funct3(insn) {
        0 => a.wrapping_add(imm),
        2 => u32::from((a as i32) < (imm as i32)),
        3 => u32::from(a < imm),
        4 => a ^ imm,
        6 => a | imm,
        7 => a & imm,
        1 if funct7 == 0 => a << shamt,
        5 if funct7 == 0 => a >> shamt,
        5 if funct7 == 0x20 => ((a as i32) >> shamt) as u32,
        _ => return s.fault(FAULT_ILLEGAL),
    };
    s.set_reg(rd(insn), value);
    s.pc = s.pc.wrapping_add(4);
}

fn execute_op(s: &mut State, insn: u32) {
    let (a, b) = (rs1(s, insn), rs2(s, insn));
    let value = match (insn >> 25, funct3(insn)) {
        (0, 0) => a.wrapping_add(b),
        (0x20, 0) => a.wrapping_sub(b),
        (0, 1) => a << (b & 31),
        (0, 2) => u32::from((a as i32) < (b as i32)),
        (0, 3) => u32::from(a < b),
        (0, 4) => a ^ b,
        (0, 5) => a >> (b & 31),
        (0x20, 5) => ((a as i32) >> (b & 31)) as u32,
        (0, 6) => a | b,
        (0, 7) => a & b,
        (1, f3) => execute_mext(f3, a, b),
        _ => return s.fault(FAULT_ILLEGAL),
    };
    s.set_reg(rd(insn), value);
    s.pc = s.pc.wrapping_add(4);
}

fn execute_mext(funct3: u32, a: u32, b: u32) -> u32 {
    let (sa, sb) = (i64::from(a as i32), i64::from(b as i32));
    let (ua, ub) = (u64::from(a), u64::from(b));
    match funct3 {
        0 => a.wrapping_mul(b),
        1 => ((sa * sb) >> 32) as u32,
        2 => ((sa * ub as i64) >> 32) as u32,
        3 => ((ua * ub) >> 32) as u32,
        4 if b == 0 => u32::MAX,
        4 if a == 0x8000_0000 && b == u32::MAX => a,
        4 => ((a as i32) / (b as i32)) as u32,
        5 if b == 0 => u32::MAX,
        5 => a / b,
        6 if b == 0 => a,
        6 if a == 0x8000_0000 && b == u32::MAX => 0,
        6 => ((a as i32) % (b as i32)) as u32,
        7 if b == 0 => a,
        _ => a % b,
    }
}

fn execute_misc_mem(s: &mut State, insn: u32) {
    if funct3(insn) > 1 {
        return s.fault(FAULT_ILLEGAL);
    }
    s.pc = s.pc.wrapping_add(4);
}

fn execute_system(s: &mut State, c: &mut Cursor<'_>, insn: u32) -> Result<(), VerifyError> {
    match insn {
        0x0000_0073 => execute_ecall(s, c),
        0x0010_0073 => {
            s.fault(FAULT_BREAKPOINT);
            Ok(())
        }
        _ => {
            s.fault(FAULT_ILLEGAL);
            Ok(())
        }
    }
}

fn execute_ecall(s: &mut State, c: &mut Cursor<'_>) -> Result<(), VerifyError> {
    match s.regs[17] {
        64 => ecall_write(s),
        93 | 94 => ecall_exit(s),
        0x1_0000 => return ecall_read_chunk(s, c),
        0x1_0001 => return ecall_write_chunk(s, c),
        _ => s.fault(FAULT_UNKNOWN_ECALL),
    }
    Ok(())
}

fn ecall_write(s: &mut State) {
    let fd = s.regs[10];
    s.regs[10] = if fd == 1 || fd == 2 {
        s.regs[12]
    } else {
        (-9i32) as u32
    };
    s.pc = s.pc.wrapping_add(4);
}

fn ecall_exit(s: &mut State) {
    s.status = 1;
    s.exit_code = s.regs[10];
}

fn ecall_read_chunk(s: &mut State, c: &mut Cursor<'_>) -> Result<(), VerifyError> {
    let (slot, index, dest) = (s.regs[10], s.regs[11], s.regs[12]);
    if let Some(code) = access_fault(dest, 32) {
        s.fault(code);
        return Ok(());
    }
    if slot >= 1 << INPUT_DEPTH {
        s.fault(FAULT_INPUT_RANGE);
        return Ok(());
    }
    let header_len = u16::from_be_bytes(
        c.take(2, "input proof header length")?
            .try_into()
            .expect("2"),
    ) as usize;
    let (leaf, byte_len, data_root) = if header_len == 0 {
        ([0u8; 32], None, [0u8; 32])
    } else {
        if !(4..=MAX_HEADER).contains(&header_len) {
            return Err(VerifyError::BadInputProof(slot));
        }
        let header = c.take(header_len, "input proof header")?;
        let data_root = c.hash("input proof data root")?;
        let byte_len = u32::from_be_bytes(header[..4].try_into().expect("4"));
        (
            keccak256(&[header, &data_root].concat()),
            Some(byte_len),
            data_root,
        )
    };
    let slot_path = c.hashes::<INPUT_DEPTH>("input proof slot path")?;
    if root_from_path(&leaf, u64::from(slot), &slot_path) != s.input_root {
        return Err(VerifyError::BadInputProof(slot));
    }
    let chunks = byte_len.map_or(0, |len| len.div_ceil(32));
    if index >= chunks {
        s.fault(FAULT_INPUT_RANGE);
        return Ok(());
    }
    let chunk = c.hash("input chunk")?;
    let depth = ceil_log2(u64::from(chunks)) as usize;
    let mut node = chunk;
    for k in 0..depth {
        let sibling = c.hash("input chunk path")?;
        node = if (index >> k) & 1 == 0 {
            hash_pair(&node, &sibling)
        } else {
            hash_pair(&sibling, &node)
        };
    }
    if node != data_root {
        return Err(VerifyError::BadChunkProof(index));
    }
    let leaf = verify_memory_proof(c, &s.mem_root, dest)?;
    s.mem_root = leaf.new_root(&chunk);
    s.pc = s.pc.wrapping_add(4);
    Ok(())
}

fn ecall_write_chunk(s: &mut State, c: &mut Cursor<'_>) -> Result<(), VerifyError> {
    let src = s.regs[10];
    if let Some(code) = access_fault(src, 32) {
        s.fault(code);
        return Ok(());
    }
    let encoded = c.take(4 + 32 * OUTPUT_DEPTH, "output accumulator")?;
    if keccak256(encoded) != s.output_acc {
        return Err(VerifyError::BadAccumulator);
    }
    let mut count = u32::from_be_bytes(encoded[..4].try_into().expect("4"));
    if count >= OUTPUT_MAX {
        s.fault(FAULT_OUTPUT_FULL);
        return Ok(());
    }
    let mut frontier = [[0u8; 32]; OUTPUT_DEPTH];
    for (h, entry) in frontier.iter_mut().enumerate() {
        *entry = encoded[4 + 32 * h..36 + 32 * h].try_into().expect("32");
    }
    let leaf = verify_memory_proof(c, &s.mem_root, src)?;
    accumulator_append(&mut count, &mut frontier, leaf.bytes);
    let mut out = count.to_be_bytes().to_vec();
    frontier.iter().for_each(|h| out.extend_from_slice(h));
    s.output_acc = keccak256(&out);
    s.pc = s.pc.wrapping_add(4);
    Ok(())
}

/// Appends a chunk to the incremental tree (the deposit-contract construction).
fn accumulator_append(count: &mut u32, frontier: &mut [Hash; OUTPUT_DEPTH], chunk: [u8; 32]) {
    *count += 1;
    let mut node = chunk;
    let mut size = *count;
    for entry in frontier.iter_mut() {
        if size & 1 == 1 {
            *entry = node;
            return;
        }
        node = hash_pair(entry, &node);
        size >>= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::zero_hash;

    const PROOF_LEN: usize = 32 + 32 * MEMORY_DEPTH;

    fn state_bytes(pc: u32, status: u8, mem_root: Hash) -> Vec<u8> {
        let s = State {
            pc,
            regs: [0; 32],
            mem_root,
            step: 5,
            status,
            exit_code: 0,
            input_root: zero_hash(INPUT_DEPTH),
            output_acc: [0; 32],
        };
        s.encode()
    }

    /// Rejections that need no machine: the full differential tests are in `vm/tests/`.
    #[test]
    fn rejections_and_padding() {
        let empty = zero_hash(MEMORY_DEPTH);
        let exited = state_bytes(0x1000, 1, empty);
        let h = keccak256(&exited);
        assert_eq!(
            verify_step(&h, &exited),
            Ok(h),
            "a step after exit changes nothing"
        );
        let cases: &[(&str, Vec<u8>, Hash, fn(&VerifyError) -> bool)] = &[
            ("short", exited[..100].to_vec(), h, |e| {
                matches!(e, VerifyError::BadWitnessLength { .. })
            }),
            ("trailing", [&exited[..], &[0]].concat(), h, |e| {
                matches!(e, VerifyError::BadWitnessLength { .. })
            }),
            ("wrong hash", exited.clone(), [1; 32], |e| {
                matches!(e, VerifyError::BadPreState(_))
            }),
            (
                "status 3",
                state_bytes(0x1000, 3, empty),
                keccak256(&state_bytes(0x1000, 3, empty)),
                |e| matches!(e, VerifyError::BadPreState(_)),
            ),
            (
                "bad instruction proof",
                [state_bytes(0x1000, 0, empty), vec![1; PROOF_LEN]].concat(),
                keccak256(&state_bytes(0x1000, 0, empty)),
                |e| matches!(e, VerifyError::BadInstructionProof(0x1000)),
            ),
            (
                "missing instruction proof",
                state_bytes(0x1000, 0, empty),
                keccak256(&state_bytes(0x1000, 0, empty)),
                |e| matches!(e, VerifyError::BadInstructionProof(0x1000)),
            ),
        ];
        for (name, witness, pre, check) in cases {
            let err = verify_step(pre, witness).expect_err(name);
            assert!(check(&err), "{name}: {err:?}");
        }
    }

    /// Fetch faults need no proof at all.
    #[test]
    fn fetch_faults_without_proofs() {
        for (pc, code) in [
            (0x1002u32, FAULT_MISALIGNED_FETCH),
            (0x0ffc, FAULT_UNMAPPED),
        ] {
            let pre = state_bytes(pc, 0, zero_hash(MEMORY_DEPTH));
            let post = verify_step(&keccak256(&pre), &pre).unwrap();
            let mut want = State::decode(&pre);
            want.step += 1;
            want.fault(code);
            assert_eq!(post, keccak256(&want.encode()), "pc {pc:#x}");
        }
    }

    #[test]
    fn mext_edge_cases() {
        let min = 0x8000_0000u32;
        let cases = [
            (4, min, u32::MAX, min),
            (6, min, u32::MAX, 0),
            (4, 7, 0, u32::MAX),
            (6, 7, 0, 7),
            (1, min, min, 0x4000_0000),
            (2, u32::MAX, u32::MAX, u32::MAX),
            (3, u32::MAX, u32::MAX, 0xffff_fffe),
        ];
        for (f3, a, b, want) in cases {
            assert_eq!(execute_mext(f3, a, b), want, "funct3 {f3} {a:#x} {b:#x}");
        }
    }
}
