// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

import {
    ACCUMULATOR_LEN,
    INPUT_DEPTH,
    INPUT_SLOTS,
    LEAF_BYTES,
    MEMORY_DEPTH,
    MEMORY_ZERO_HASHES,
    OFFSET_EXIT_CODE,
    OFFSET_FRONTIER,
    OFFSET_INPUT_ROOT,
    OFFSET_MEM_ROOT,
    OFFSET_OUTPUT_ACC,
    OFFSET_PC,
    OFFSET_REGS,
    OFFSET_STATUS,
    OFFSET_STEP,
    OUTPUT_DEPTH,
    STATE_LEN,
    STATUS_EXITED,
    STATUS_FAULTED,
    STATUS_RUNNING
} from "./VmLayout.sol";

/// @title Step
/// @notice The one-step verifier of the opml RV32IM machine: given the hash of a pre-state and a step
/// witness, it executes one instruction exactly as the Rust VM does and returns the post-state hash.
/// @dev Follows docs/protocol.md sections 1 to 4 (state encoding, Merkle trees, step semantics,
/// witness layout). Pure and storage-free so that anyone can call it. The 237-byte pre-state is
/// copied from calldata into memory once, updated in place and hashed again, so no field is decoded
/// or re-encoded that the instruction does not touch. Every witness rejection reverts with a custom
/// error named as in the protocol.
///
/// It mirrors `vm/src/verify.rs` function by function, in the same order and under the same names
/// (Rust `snake_case` is Solidity `_camelCase`; `verify_step` is `step`): the cursor over the
/// witness (`_readBytes` ...), the state in place of Rust's `State` (`_writeReg`, `_advance`,
/// `_fault`), `_executeStep`, the proofs (`_verifyInstructionProof`, `_verifyMemoryProof` /
/// `_memoryRootWithLeaf` / `_rewriteMemoryProof`, `_verifyInputProof`, `_verifyChunkProof`,
/// `_verifyAccumulator`, `_accumulatorAppend`), the instruction fields, one `_execute*` function per instruction class
/// and one `_ecall*` function per ecall. The helpers at the end are Rust's `crate::hash`.
contract Step {
    // ---- Layout (protocol sections 1 and 2; the shared part is in VmLayout.sol) ---------------

    /// Bytes of a memory proof's head: the leaf and the `u32` mask of omitted siblings (section 4).
    uint256 internal constant MEMORY_PROOF_HEAD_LEN = 32 + 4;
    /// Memory taken for a read memory proof, `leaf ‖ path[0..27]` (a plain number, for assembly).
    uint256 internal constant MEMORY_PROOF_BUFFER_LEN = 896; // 32 + 32 * MEMORY_DEPTH
    /// End of the guard page `[0, 0x1000)` (section 3.1).
    uint32 internal constant GUARD_END = 0x1000;
    /// Bounds of a non-empty tensor header (section 1.3).
    uint256 internal constant MIN_HEADER_LEN = 4;
    uint256 internal constant MAX_HEADER_LEN = 1024;
    /// Capacity of the output accumulator (section 1.5).
    uint256 internal constant OUTPUT_CAPACITY = (1 << OUTPUT_DEPTH) - 1;

    /// Memory taken for the state: its 237 bytes rounded up to whole 32-byte words, plus one word,
    /// so that 32-byte reads and writes at its end stay inside (a plain number, for assembly).
    uint256 internal constant STATE_BUFFER_LEN = 288;
    /// Memory taken for the accumulator: its 868 bytes rounded up to whole 32-byte words.
    uint256 internal constant ACCUMULATOR_BUFFER_LEN = 896;

    // ---- Fault codes (section 3.4) ------------------------------------------------------------

    uint32 internal constant FAULT_ILLEGAL_INSTRUCTION = 1;
    uint32 internal constant FAULT_BREAKPOINT = 2;
    uint32 internal constant FAULT_MISALIGNED_FETCH = 3;
    uint32 internal constant FAULT_MISALIGNED_ACCESS = 4;
    uint32 internal constant FAULT_UNMAPPED_ACCESS = 5;
    uint32 internal constant FAULT_UNKNOWN_ECALL = 6;
    uint32 internal constant FAULT_INPUT_OUT_OF_RANGE = 7;
    uint32 internal constant FAULT_OUTPUT_FULL = 8;

    // ---- Opcodes (section 3.2) ----------------------------------------------------------------

    uint32 internal constant OPCODE_LUI = 0x37;
    uint32 internal constant OPCODE_AUIPC = 0x17;
    uint32 internal constant OPCODE_JAL = 0x6f;
    uint32 internal constant OPCODE_JALR = 0x67;
    uint32 internal constant OPCODE_BRANCH = 0x63;
    uint32 internal constant OPCODE_LOAD = 0x03;
    uint32 internal constant OPCODE_STORE = 0x23;
    uint32 internal constant OPCODE_OP_IMM = 0x13;
    uint32 internal constant OPCODE_OP = 0x33;
    uint32 internal constant OPCODE_MISC_MEM = 0x0f;
    uint32 internal constant OPCODE_SYSTEM = 0x73;

    /// funct7 values of OP (and imm[11:5] of the OP-IMM shifts).
    uint32 internal constant FUNCT7_BASE = 0x00;
    uint32 internal constant FUNCT7_ALT = 0x20;
    uint32 internal constant FUNCT7_MEXT = 0x01;

    /// funct3 of JALR.
    uint32 internal constant FUNCT3_JALR = 0;
    /// funct3 of BRANCH.
    uint32 internal constant FUNCT3_BEQ = 0;
    uint32 internal constant FUNCT3_BNE = 1;
    uint32 internal constant FUNCT3_BLT = 4;
    uint32 internal constant FUNCT3_BGE = 5;
    uint32 internal constant FUNCT3_BLTU = 6;
    uint32 internal constant FUNCT3_BGEU = 7;
    /// funct3 of LOAD.
    uint32 internal constant FUNCT3_LB = 0;
    uint32 internal constant FUNCT3_LH = 1;
    uint32 internal constant FUNCT3_LW = 2;
    uint32 internal constant FUNCT3_LBU = 4;
    uint32 internal constant FUNCT3_LHU = 5;
    /// funct3 of STORE.
    uint32 internal constant FUNCT3_SB = 0;
    uint32 internal constant FUNCT3_SH = 1;
    uint32 internal constant FUNCT3_SW = 2;
    /// funct3 of OP and OP-IMM (ADD is also ADDI and SUB, SRL is also SRA, and so on).
    uint32 internal constant FUNCT3_ADD = 0;
    uint32 internal constant FUNCT3_SLL = 1;
    uint32 internal constant FUNCT3_SLT = 2;
    uint32 internal constant FUNCT3_SLTU = 3;
    uint32 internal constant FUNCT3_XOR = 4;
    uint32 internal constant FUNCT3_SRL = 5;
    uint32 internal constant FUNCT3_OR = 6;
    uint32 internal constant FUNCT3_AND = 7;
    /// funct3 of OP with funct7 FUNCT7_MEXT.
    uint32 internal constant FUNCT3_MUL = 0;
    uint32 internal constant FUNCT3_MULH = 1;
    uint32 internal constant FUNCT3_MULHSU = 2;
    uint32 internal constant FUNCT3_MULHU = 3;
    uint32 internal constant FUNCT3_DIV = 4;
    uint32 internal constant FUNCT3_DIVU = 5;
    uint32 internal constant FUNCT3_REM = 6;
    uint32 internal constant FUNCT3_REMU = 7;
    /// funct3 of MISC-MEM.
    uint32 internal constant FUNCT3_FENCE = 0;
    uint32 internal constant FUNCT3_FENCE_I = 1;

    /// The only two SYSTEM words that are not illegal.
    uint32 internal constant WORD_ECALL = 0x00000073;
    uint32 internal constant WORD_EBREAK = 0x00100073;

    // ---- Ecalls (section 3.3) -----------------------------------------------------------------

    uint256 internal constant REG_A0 = 10;
    uint256 internal constant REG_A1 = 11;
    uint256 internal constant REG_A2 = 12;
    uint256 internal constant REG_A7 = 17;

    uint256 internal constant ECALL_WRITE = 64;
    uint256 internal constant ECALL_EXIT = 93;
    uint256 internal constant ECALL_EXIT_GROUP = 94;
    uint256 internal constant ECALL_READ_CHUNK = 0x10000;
    uint256 internal constant ECALL_WRITE_CHUNK = 0x10001;
    /// `-EBADF`, what `write` returns for an fd other than 1 and 2.
    uint32 internal constant EBADF = 0xfffffff7;

    uint32 internal constant MASK32 = 0xffffffff;
    /// The most negative 32-bit integer, whose division by -1 overflows.
    uint32 internal constant INT32_MIN = 0x80000000;

    // ---- Errors (section 4) -------------------------------------------------------------------

    /// The pre-state does not hash to the pre-state hash, or its status byte is not 0, 1 or 2.
    error BadPreState(string reason);
    /// The witness ends before `what` (which needs `needed` bytes at `offset`), or has bytes left
    /// over after its last part (`needed` is then 0).
    error BadWitnessLength(string what, uint256 offset, uint256 needed, uint256 length);
    /// The leaf holding the instruction at `pc` does not prove against the memory root, or its
    /// proof's mask of left-out siblings has a bit above the tree's depth.
    error BadInstructionProof(uint32 pc);
    /// The leaf holding `addr` does not prove against the memory root, or its proof's mask of
    /// left-out siblings has a bit above the tree's depth.
    error BadMemoryProof(uint32 addr);
    /// The input proof of `slot` is malformed or does not prove against the input root.
    error BadInputProof(uint32 slot, string reason);
    /// Chunk `chunk` of input slot `slot` does not prove against the slot's data root.
    error BadChunkProof(uint32 slot, uint32 chunk);
    /// The output accumulator in the witness does not hash to the state's outputAcc.
    error BadAccumulator();

    // ---- Witness reader -----------------------------------------------------------------------

    /// Where the witness is read: its calldata start, its end, and the next unread byte.
    struct Cursor {
        uint256 start;
        uint256 end;
        uint256 at;
    }

    /// Takes the next `n` witness bytes; returns their calldata offset.
    function _readBytes(Cursor memory c, uint256 n, string memory what) private pure returns (uint256 at) {
        at = c.at;
        if (c.end - at < n) revert BadWitnessLength(what, at - c.start, n, c.end - c.start);
        c.at = at + n;
    }

    /// The next 2 bytes as a big-endian number.
    function _readU16(Cursor memory c, string memory what) private pure returns (uint256 v) {
        uint256 at = _readBytes(c, 2, what);
        assembly ("memory-safe") {
            v := shr(240, calldataload(at))
        }
    }

    /// The next 32 bytes.
    function _readHash(Cursor memory c, string memory what) private pure returns (bytes32 v) {
        uint256 at = _readBytes(c, 32, what);
        assembly ("memory-safe") {
            v := calldataload(at)
        }
    }

    /// The next `depth` hashes (a Merkle path, bottom to top), copied to memory; returns their
    /// memory offset.
    function _readPath(Cursor memory c, uint256 depth, string memory what) private pure returns (uint256 path) {
        uint256 at = _readBytes(c, 32 * depth, what);
        assembly ("memory-safe") {
            path := mload(0x40)
            mstore(0x40, add(path, shl(5, depth)))
            calldatacopy(path, at, shl(5, depth))
        }
    }

    /// Rejects bytes left over after the last part.
    function _finish(Cursor memory c) private pure {
        if (c.at != c.end) {
            revert BadWitnessLength("end of witness", c.at - c.start, 0, c.end - c.start);
        }
    }

    // ---- State (section 2), in place in its encoding at memory `s` -----------------------------

    function _u32(uint256 s, uint256 off) private pure returns (uint32 v) {
        assembly ("memory-safe") {
            v := shr(224, mload(add(s, off)))
        }
    }

    function _setU32(uint256 s, uint256 off, uint32 v) private pure {
        assembly ("memory-safe") {
            let p := add(s, off)
            mstore(p, or(shr(32, shl(32, mload(p))), shl(224, v)))
        }
    }

    function _u64(uint256 s, uint256 off) private pure returns (uint64 v) {
        assembly ("memory-safe") {
            v := shr(192, mload(add(s, off)))
        }
    }

    function _setU64(uint256 s, uint256 off, uint64 v) private pure {
        assembly ("memory-safe") {
            let p := add(s, off)
            mstore(p, or(shr(64, shl(64, mload(p))), shl(192, v)))
        }
    }

    function _byte(uint256 s, uint256 off) private pure returns (uint256 v) {
        assembly ("memory-safe") {
            v := byte(0, mload(add(s, off)))
        }
    }

    function _setByte(uint256 s, uint256 off, uint256 v) private pure {
        assembly ("memory-safe") {
            mstore8(add(s, off), v)
        }
    }

    function _hash(uint256 s, uint256 off) private pure returns (bytes32 v) {
        assembly ("memory-safe") {
            v := mload(add(s, off))
        }
    }

    function _setHash(uint256 s, uint256 off, bytes32 v) private pure {
        assembly ("memory-safe") {
            mstore(add(s, off), v)
        }
    }

    function _pc(uint256 s) private pure returns (uint32) {
        return _u32(s, OFFSET_PC);
    }

    function _setPc(uint256 s, uint32 pc) private pure {
        _setU32(s, OFFSET_PC, pc);
    }

    /// Register `r` (x0 reads 0); x1..x31 sit at OFFSET_REGS + 4 * (r - 1) = 4r.
    function _reg(uint256 s, uint256 r) private pure returns (uint32) {
        return r == 0 ? 0 : _u32(s, r << 2);
    }

    /// Writes `rd`; writes to x0 are discarded.
    function _writeReg(uint256 s, uint256 rd, uint32 value) private pure {
        if (rd != 0) _setU32(s, rd << 2, value);
    }

    /// `pc = pc + 4`.
    function _advance(uint256 s) private pure {
        unchecked {
            _setPc(s, _pc(s) + 4);
        }
    }

    /// A fault: `status = 2`, `exitCode = code`, nothing else changes.
    function _fault(uint256 s, uint32 code) private pure {
        _setByte(s, OFFSET_STATUS, STATUS_FAULTED);
        _setU32(s, OFFSET_EXIT_CODE, code);
    }

    // ---- Entry point (section 4) ---------------------------------------------------------------

    /// Executes one step. Returns the post-state hash, or reverts when the witness does not prove
    /// what the step needs. A pre-state that has exited or faulted is returned unchanged.
    /// (`verify_step` in Rust.)
    function step(bytes32 preStateHash, bytes calldata witness) external pure returns (bytes32) {
        uint256 start;
        assembly ("memory-safe") {
            start := witness.offset
        }
        Cursor memory c = Cursor(start, start + witness.length, start);
        uint256 s;
        assembly ("memory-safe") {
            s := mload(0x40)
            mstore(0x40, add(s, STATE_BUFFER_LEN))
        }
        uint256 encoded = _readBytes(c, STATE_LEN, "pre-state");
        bytes32 hashed;
        assembly ("memory-safe") {
            calldatacopy(s, encoded, STATE_LEN)
            hashed := keccak256(s, STATE_LEN)
        }
        if (hashed != preStateHash) revert BadPreState("it does not hash to the pre-state hash");
        uint256 status = _byte(s, OFFSET_STATUS);
        if (status == STATUS_RUNNING) {
            unchecked {
                // Not reachable in 2^64 steps; wrapping keeps a made-up pre-state from reverting.
                _setU64(s, OFFSET_STEP, _u64(s, OFFSET_STEP) + 1);
            }
            _executeStep(s, c);
        } else if (status > STATUS_FAULTED) {
            revert BadPreState("its status byte is not 0, 1 or 2");
        }
        _finish(c);
        assembly ("memory-safe") {
            hashed := keccak256(s, STATE_LEN)
        }
        return hashed;
    }

    /// Fetches (section 3.1), decodes and executes the instruction at `pc` of a running machine.
    /// The classes are tried in the order of how often programs run them.
    function _executeStep(uint256 s, Cursor memory c) private pure {
        uint32 pc = _pc(s);
        if (pc & 3 != 0) return _fault(s, FAULT_MISALIGNED_FETCH);
        if (pc < GUARD_END) return _fault(s, FAULT_UNMAPPED_ACCESS);
        uint32 insn = _verifyInstructionProof(c, s);
        // A compressed (16-bit) instruction.
        if (insn & 3 != 3) return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        uint32 opcode = _opcode(insn);
        if (opcode == OPCODE_OP) return _executeOp(s, insn);
        if (opcode == OPCODE_OP_IMM) return _executeOpImm(s, insn);
        if (opcode == OPCODE_LOAD) return _executeLoad(s, c, insn);
        if (opcode == OPCODE_STORE) return _executeStore(s, c, insn);
        if (opcode == OPCODE_BRANCH) return _executeBranch(s, insn);
        if (opcode == OPCODE_LUI || opcode == OPCODE_AUIPC) return _executeLuiAuipc(s, insn);
        if (opcode == OPCODE_JAL) return _executeJal(s, insn);
        if (opcode == OPCODE_JALR) return _executeJalr(s, insn);
        if (opcode == OPCODE_MISC_MEM) return _executeMiscMem(s, insn);
        if (opcode == OPCODE_SYSTEM) return _executeSystem(s, c, insn);
        _fault(s, FAULT_ILLEGAL_INSTRUCTION);
    }

    // ---- Merkle proofs (sections 1 and 4) ------------------------------------------------------

    /// Reads the memory proof `leaf ‖ mask ‖ siblings` of the leaf holding `addr` (section 4) into
    /// memory as `leaf ‖ path[0..27]`; returns its memory offset. The siblings whose mask bit is set
    /// are left out of the witness and are the zero-subtree hashes of their level. A mask with a bit
    /// above the tree's depth reverts with the custom error `bad` (`BadInstructionProof` or
    /// `BadMemoryProof`) of `addr`.
    function _readMemoryProof(Cursor memory c, uint32 addr, string memory what, bytes4 bad)
        private
        pure
        returns (uint256 proof)
    {
        uint256 head = _readBytes(c, MEMORY_PROOF_HEAD_LEN, what);
        uint256 mask;
        assembly ("memory-safe") {
            mask := shr(224, calldataload(add(head, 32)))
        }
        if (mask >> MEMORY_DEPTH != 0) {
            assembly ("memory-safe") {
                mstore(0, bad)
                mstore(4, addr)
                revert(0, 36)
            }
        }
        uint256 omitted;
        for (uint256 k = 0; k < MEMORY_DEPTH; k++) {
            omitted += (mask >> k) & 1;
        }
        uint256 given = _readPath(c, MEMORY_DEPTH - omitted, what);
        bytes memory zeros = MEMORY_ZERO_HASHES;
        assembly ("memory-safe") {
            proof := mload(0x40)
            mstore(0x40, add(proof, MEMORY_PROOF_BUFFER_LEN))
            mstore(proof, calldataload(head))
            let path := add(proof, 32)
            for { let h := 0 } lt(h, MEMORY_DEPTH) { h := add(h, 1) } {
                switch and(shr(h, mask), 1)
                case 0 {
                    mstore(add(path, shl(5, h)), mload(given))
                    given := add(given, 32)
                }
                default { mstore(add(path, shl(5, h)), mload(add(add(zeros, 32), shl(5, h)))) }
            }
        }
    }

    /// The memory root of the tree that holds `leaf` where the leaf of the memory proof at memory
    /// `proof`, the one holding `addr`, is (section 1).
    function _memoryRootWithLeaf(uint256 proof, uint32 addr, bytes32 leaf) private pure returns (bytes32) {
        return _rootFromPath(leaf, addr / LEAF_BYTES, proof + 32, MEMORY_DEPTH);
    }

    /// Reads the instruction proof, checks it against `memRoot` and returns the little-endian word at
    /// byte `pc mod 32` of the leaf.
    function _verifyInstructionProof(Cursor memory c, uint256 s) private pure returns (uint32) {
        uint32 pc = _pc(s);
        uint256 proof = _readMemoryProof(c, pc, "instruction proof", BadInstructionProof.selector);
        bytes32 leaf = _proofLeaf(proof);
        if (_memoryRootWithLeaf(proof, pc, leaf) != _hash(s, OFFSET_MEM_ROOT)) revert BadInstructionProof(pc);
        return _leWord(leaf, pc % LEAF_BYTES, 4);
    }

    /// Reads the memory proof of the leaf holding `addr`, checks it against `memRoot` and returns the
    /// leaf.
    function _verifyMemoryProof(Cursor memory c, bytes32 memRoot, uint32 addr) private pure returns (bytes32 leaf) {
        uint256 proof = _readMemoryProof(c, addr, "memory proof", BadMemoryProof.selector);
        leaf = _proofLeaf(proof);
        if (_memoryRootWithLeaf(proof, addr, leaf) != memRoot) revert BadMemoryProof(addr);
    }

    /// Checks the memory proof at memory `proof` (of the leaf holding `addr`) against `memRoot` and
    /// returns the memory root with `leaf` in place of the proof's leaf: `_verifyMemoryProof`'s check
    /// and `_memoryRootWithLeaf` in one pass over the path.
    function _rewriteMemoryProof(uint256 proof, bytes32 memRoot, uint32 addr, bytes32 leaf)
        private
        pure
        returns (bytes32 newRoot)
    {
        bytes32 oldRoot;
        assembly ("memory-safe") {
            oldRoot := mload(proof)
            newRoot := leaf
            let index := shr(5, addr)
            let path := add(proof, 32)
            for { let h := 0 } lt(h, MEMORY_DEPTH) { h := add(h, 1) } {
                let sibling := mload(add(path, shl(5, h)))
                switch and(shr(h, index), 1)
                case 0 {
                    mstore(0x20, sibling)
                    mstore(0, oldRoot)
                    oldRoot := keccak256(0, 0x40)
                    mstore(0, newRoot)
                    newRoot := keccak256(0, 0x40)
                }
                default {
                    mstore(0, sibling)
                    mstore(0x20, oldRoot)
                    oldRoot := keccak256(0, 0x40)
                    mstore(0x20, newRoot)
                    newRoot := keccak256(0, 0x40)
                }
            }
        }
        if (oldRoot != memRoot) revert BadMemoryProof(addr);
    }

    /// Reads `headerLen ‖ header ‖ dataRoot ‖ slotPath` and checks the slot's leaf against
    /// `inputRoot` at index `slot` (section 4); returns the slot's chunk count (0 for an empty slot)
    /// and its data root.
    function _verifyInputProof(Cursor memory c, bytes32 inputRoot, uint32 slot)
        private
        pure
        returns (uint256 chunkCount, bytes32 dataRoot)
    {
        uint256 headerLen = _readU16(c, "input proof header length");
        bytes32 leaf;
        if (headerLen != 0) {
            if (headerLen < MIN_HEADER_LEN || headerLen > MAX_HEADER_LEN) {
                revert BadInputProof(slot, "header length is not 0 and not in 4..=1024");
            }
            uint256 header = _readBytes(c, headerLen, "input proof header");
            dataRoot = _readHash(c, "input proof data root");
            uint256 byteLen;
            assembly ("memory-safe") {
                byteLen := shr(224, calldataload(header))
                // header ‖ dataRoot are contiguous in calldata.
                let m := mload(0x40)
                calldatacopy(m, header, add(headerLen, 32))
                leaf := keccak256(m, add(headerLen, 32))
            }
            chunkCount = (byteLen + LEAF_BYTES - 1) / LEAF_BYTES;
        }
        uint256 slotPath = _readPath(c, INPUT_DEPTH, "input proof slot path");
        if (_rootFromPath(leaf, slot, slotPath, INPUT_DEPTH) != inputRoot) {
            revert BadInputProof(slot, "the slot's leaf does not prove against inputRoot");
        }
    }

    /// Reads `chunk ‖ chunkPath` (depth `ceil(log2(n))`) and checks it against the slot's data root
    /// at index `chunkIndex`; returns the chunk.
    function _verifyChunkProof(
        Cursor memory c,
        uint256 chunkCount,
        bytes32 dataRoot,
        uint32 slot,
        uint32 chunkIndex
    ) private pure returns (bytes32 chunk) {
        chunk = _readHash(c, "input chunk");
        uint256 depth = _ceilLog2(chunkCount);
        uint256 path = _readPath(c, depth, "input chunk path");
        if (_rootFromPath(chunk, chunkIndex, path, depth) != dataRoot) revert BadChunkProof(slot, chunkIndex);
    }

    /// Reads the 868-byte accumulator `count ‖ frontier[0..27]` (section 1.5) and checks that it
    /// hashes to `outputAcc`; returns a copy of it in memory.
    function _verifyAccumulator(Cursor memory c, bytes32 outputAcc) private pure returns (uint256 acc) {
        uint256 at = _readBytes(c, ACCUMULATOR_LEN, "output accumulator");
        bytes32 accHash;
        assembly ("memory-safe") {
            acc := mload(0x40)
            mstore(0x40, add(acc, ACCUMULATOR_BUFFER_LEN))
            calldatacopy(acc, at, ACCUMULATOR_LEN)
            accHash := keccak256(acc, ACCUMULATOR_LEN)
        }
        if (accHash != outputAcc) revert BadAccumulator();
    }

    /// Appends `chunk` to the incremental tree at memory `acc` (section 1.5); the caller checks
    /// `count < 2^27 - 1`.
    function _accumulatorAppend(uint256 acc, bytes32 chunk) private pure {
        assembly ("memory-safe") {
            // Deposit-contract append: climb while the new count's low bits are 0, hashing with the
            // frontier; store the node at the first 1 bit.
            let count := add(shr(224, mload(acc)), 1)
            mstore(acc, or(shr(32, shl(32, mload(acc))), shl(224, count)))
            let node := chunk
            let size := count
            for { let h := 0 } lt(h, OUTPUT_DEPTH) { h := add(h, 1) } {
                let entry := add(acc, add(OFFSET_FRONTIER, shl(5, h)))
                if and(size, 1) {
                    mstore(entry, node)
                    break
                }
                mstore(0, mload(entry))
                mstore(0x20, node)
                node := keccak256(0, 0x40)
                size := shr(1, size)
            }
        }
    }

    // ---- Instruction fields (section 3.2) ------------------------------------------------------

    function _opcode(uint32 insn) private pure returns (uint32) {
        return insn & 0x7f;
    }

    function _rd(uint32 insn) private pure returns (uint256) {
        return (insn >> 7) & 31;
    }

    function _funct3(uint32 insn) private pure returns (uint32) {
        return (insn >> 12) & 7;
    }

    function _funct7(uint32 insn) private pure returns (uint32) {
        return insn >> 25;
    }

    /// The value of `rs1`.
    function _rs1(uint256 s, uint32 insn) private pure returns (uint32) {
        return _reg(s, (insn >> 15) & 31);
    }

    /// The value of `rs2`.
    function _rs2(uint256 s, uint32 insn) private pure returns (uint32) {
        return _reg(s, (insn >> 20) & 31);
    }

    /// `imm[11:0] = insn[31:20]`, sign-extended.
    function _immI(uint32 insn) private pure returns (uint32) {
        return uint32(uint256(int256(int32(insn)) >> 20));
    }

    /// `imm[11:5] = insn[31:25]`, `imm[4:0] = insn[11:7]`, sign-extended.
    function _immS(uint32 insn) private pure returns (uint32) {
        return uint32(uint256(int256(int32(insn)) >> 20)) & 0xffffffe0 | ((insn >> 7) & 0x1f);
    }

    /// `imm[12|10:5] = insn[31:25]`, `imm[4:1|11] = insn[11:7]`, sign-extended.
    function _immB(uint32 insn) private pure returns (uint32) {
        return uint32(uint256(int256(int32(insn)) >> 19)) & 0xfffff000 | ((insn & 0x80) << 4)
            | ((insn >> 20) & 0x7e0) | ((insn >> 7) & 0x1e);
    }

    /// `imm[31:12] = insn[31:12]`.
    function _immU(uint32 insn) private pure returns (uint32) {
        return insn & 0xfffff000;
    }

    /// `imm[20|10:1|11|19:12] = insn[31:12]`, sign-extended.
    function _immJ(uint32 insn) private pure returns (uint32) {
        return uint32(uint256(int256(int32(insn)) >> 11)) & 0xfff00000 | (insn & 0x000ff000)
            | ((insn >> 9) & 0x800) | ((insn >> 20) & 0x7fe);
    }

    // ---- Instruction classes (section 3.2) -----------------------------------------------------

    /// LUI: `rd = imm_u`; AUIPC: `rd = pc + imm_u`.
    function _executeLuiAuipc(uint256 s, uint32 insn) private pure {
        uint32 value;
        unchecked {
            value = _opcode(insn) == OPCODE_LUI ? _immU(insn) : _pc(s) + _immU(insn);
        }
        _writeReg(s, _rd(insn), value);
        _advance(s);
    }

    /// JAL: `rd = pc + 4; pc = pc + imm_j`.
    function _executeJal(uint256 s, uint32 insn) private pure {
        uint32 pc = _pc(s);
        unchecked {
            _writeReg(s, _rd(insn), pc + 4);
            _setPc(s, pc + _immJ(insn));
        }
    }

    /// JALR (funct3 0): `t = (rs1 + imm_i) & ~1; rd = pc + 4; pc = t`.
    function _executeJalr(uint256 s, uint32 insn) private pure {
        if (_funct3(insn) != FUNCT3_JALR) return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        uint32 pc = _pc(s);
        unchecked {
            uint32 target = (_rs1(s, insn) + _immI(insn)) & ~uint32(1);
            _writeReg(s, _rd(insn), pc + 4);
            _setPc(s, target);
        }
    }

    /// BEQ, BNE, BLT, BGE, BLTU, BGEU: taken `pc = pc + imm_b`, else `pc + 4`.
    function _executeBranch(uint256 s, uint32 insn) private pure {
        uint32 a = _rs1(s, insn);
        uint32 b = _rs2(s, insn);
        uint32 f3 = _funct3(insn);
        bool taken;
        if (f3 == FUNCT3_BEQ) taken = a == b;
        else if (f3 == FUNCT3_BNE) taken = a != b;
        else if (f3 == FUNCT3_BLT) taken = int32(a) < int32(b);
        else if (f3 == FUNCT3_BGE) taken = int32(a) >= int32(b);
        else if (f3 == FUNCT3_BLTU) taken = a < b;
        else if (f3 == FUNCT3_BGEU) taken = a >= b;
        else return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        if (taken) {
            unchecked {
                _setPc(s, _pc(s) + _immB(insn));
            }
        } else {
            _advance(s);
        }
    }

    /// The fault of a data access of `width` bytes at `addr`, checked in order: alignment, then the
    /// guard page (section 3.2, loads and stores; section 3.3, chunk buffers); 0 when it may proceed.
    function _accessFault(uint32 addr, uint32 width) private pure returns (uint32) {
        if (addr & (width - 1) != 0) return FAULT_MISALIGNED_ACCESS; // widths are powers of 2
        if (addr < GUARD_END) return FAULT_UNMAPPED_ACCESS;
        return 0;
    }

    /// LB, LH, LW, LBU, LHU from `rs1 + imm_i`, with a memory proof of the leaf read.
    function _executeLoad(uint256 s, Cursor memory c, uint32 insn) private pure {
        uint32 f3 = _funct3(insn);
        uint32 width;
        bool signed;
        if (f3 == FUNCT3_LB) (width, signed) = (1, true);
        else if (f3 == FUNCT3_LH) (width, signed) = (2, true);
        else if (f3 == FUNCT3_LW) width = 4;
        else if (f3 == FUNCT3_LBU) width = 1;
        else if (f3 == FUNCT3_LHU) width = 2;
        else return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        uint32 addr;
        unchecked {
            addr = _rs1(s, insn) + _immI(insn);
        }
        uint32 code = _accessFault(addr, width);
        if (code != 0) return _fault(s, code);
        bytes32 leaf = _verifyMemoryProof(c, _hash(s, OFFSET_MEM_ROOT), addr);
        uint32 value = _leWord(leaf, addr % LEAF_BYTES, width);
        if (signed) value = _sext(value, width * 8);
        _writeReg(s, _rd(insn), value);
        _advance(s);
    }

    /// SB, SH, SW of the low bytes of `rs2` to `rs1 + imm_s`: the leaf is modified and the memory
    /// root recomputed along the proof's path.
    function _executeStore(uint256 s, Cursor memory c, uint32 insn) private pure {
        uint32 f3 = _funct3(insn);
        uint32 width;
        if (f3 == FUNCT3_SB) width = 1;
        else if (f3 == FUNCT3_SH) width = 2;
        else if (f3 == FUNCT3_SW) width = 4;
        else return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        uint32 addr;
        unchecked {
            addr = _rs1(s, insn) + _immS(insn);
        }
        uint32 code = _accessFault(addr, width);
        if (code != 0) return _fault(s, code);
        uint256 proof = _readMemoryProof(c, addr, "memory proof", BadMemoryProof.selector);
        bytes32 leaf = _leSetWord(_proofLeaf(proof), addr % LEAF_BYTES, width, _rs2(s, insn));
        _setHash(s, OFFSET_MEM_ROOT, _rewriteMemoryProof(proof, _hash(s, OFFSET_MEM_ROOT), addr, leaf));
        _advance(s);
    }

    /// ADDI, SLTI, SLTIU, XORI, ORI, ANDI, SLLI, SRLI, SRAI.
    function _executeOpImm(uint256 s, uint32 insn) private pure {
        uint32 a = _rs1(s, insn);
        uint32 imm = _immI(insn);
        uint32 shamt = imm & 31;
        uint32 f3 = _funct3(insn);
        uint32 f7 = _funct7(insn);
        uint32 value;
        if (f3 == FUNCT3_ADD) {
            unchecked {
                value = a + imm;
            }
        } else if (f3 == FUNCT3_SLT) {
            value = int32(a) < int32(imm) ? 1 : 0;
        } else if (f3 == FUNCT3_SLTU) {
            value = a < imm ? 1 : 0;
        } else if (f3 == FUNCT3_XOR) {
            value = a ^ imm;
        } else if (f3 == FUNCT3_OR) {
            value = a | imm;
        } else if (f3 == FUNCT3_AND) {
            value = a & imm;
        } else if (f3 == FUNCT3_SLL && f7 == FUNCT7_BASE) {
            value = a << shamt;
        } else if (f3 == FUNCT3_SRL && f7 == FUNCT7_BASE) {
            value = a >> shamt;
        } else if (f3 == FUNCT3_SRL && f7 == FUNCT7_ALT) {
            value = uint32(int32(a) >> shamt);
        } else {
            return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        }
        _writeReg(s, _rd(insn), value);
        _advance(s);
    }

    /// ADD, SUB, SLL, SLT, SLTU, XOR, SRL, SRA, OR, AND, and the M extension (funct7 1).
    function _executeOp(uint256 s, uint32 insn) private pure {
        uint32 a = _rs1(s, insn);
        uint32 b = _rs2(s, insn);
        uint32 shamt = b & 31;
        uint32 f3 = _funct3(insn);
        uint32 f7 = _funct7(insn);
        uint32 value;
        if (f7 == FUNCT7_MEXT) {
            value = _executeMext(f3, a, b);
        } else if (f7 == FUNCT7_BASE) {
            if (f3 == FUNCT3_ADD) {
                unchecked {
                    value = a + b;
                }
            } else if (f3 == FUNCT3_SLL) {
                value = a << shamt;
            } else if (f3 == FUNCT3_SLT) {
                value = int32(a) < int32(b) ? 1 : 0;
            } else if (f3 == FUNCT3_SLTU) {
                value = a < b ? 1 : 0;
            } else if (f3 == FUNCT3_XOR) {
                value = a ^ b;
            } else if (f3 == FUNCT3_SRL) {
                value = a >> shamt;
            } else if (f3 == FUNCT3_OR) {
                value = a | b;
            } else {
                value = a & b; // FUNCT3_AND
            }
        } else if (f7 == FUNCT7_ALT && f3 == FUNCT3_ADD) {
            unchecked {
                value = a - b; // SUB
            }
        } else if (f7 == FUNCT7_ALT && f3 == FUNCT3_SRL) {
            value = uint32(int32(a) >> shamt); // SRA
        } else {
            return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        }
        _writeReg(s, _rd(insn), value);
        _advance(s);
    }

    /// MUL, MULH, MULHSU, MULHU, DIV, DIVU, REM, REMU (funct3 0 to 7) of `a = rs1`, `b = rs2`, with
    /// RISC-V's results for division by zero and overflow.
    function _executeMext(uint32 funct3, uint32 a, uint32 b) private pure returns (uint32) {
        unchecked {
            int256 sa = int256(int32(a));
            int256 sb = int256(int32(b));
            bool overflow = a == INT32_MIN && b == MASK32;
            if (funct3 == FUNCT3_MUL) return a * b;
            if (funct3 == FUNCT3_MULH) return uint32(uint256((sa * sb) >> 32));
            if (funct3 == FUNCT3_MULHSU) return uint32(uint256((sa * int256(uint256(b))) >> 32));
            if (funct3 == FUNCT3_MULHU) return uint32((uint256(a) * uint256(b)) >> 32);
            if (funct3 == FUNCT3_DIV) {
                if (b == 0) return MASK32;
                if (overflow) return a;
                return uint32(int32(sa / sb));
            }
            if (funct3 == FUNCT3_DIVU) return b == 0 ? MASK32 : a / b;
            if (funct3 == FUNCT3_REM) {
                if (b == 0) return a;
                if (overflow) return 0;
                return uint32(int32(sa % sb));
            }
            return b == 0 ? a : a % b; // FUNCT3_REMU
        }
    }

    /// FENCE (funct3 0) and FENCE.I (funct3 1): no-ops.
    function _executeMiscMem(uint256 s, uint32 insn) private pure {
        uint32 f3 = _funct3(insn);
        if (f3 == FUNCT3_FENCE || f3 == FUNCT3_FENCE_I) return _advance(s);
        _fault(s, FAULT_ILLEGAL_INSTRUCTION);
    }

    /// ECALL (exactly `0x00000073`), EBREAK (exactly `0x00100073`); every other SYSTEM word is
    /// illegal.
    function _executeSystem(uint256 s, Cursor memory c, uint32 insn) private pure {
        if (insn == WORD_ECALL) return _executeEcall(s, c);
        if (insn == WORD_EBREAK) return _fault(s, FAULT_BREAKPOINT);
        _fault(s, FAULT_ILLEGAL_INSTRUCTION);
    }

    // ---- Ecalls (section 3.3) ------------------------------------------------------------------

    /// Dispatches on `a7`.
    function _executeEcall(uint256 s, Cursor memory c) private pure {
        uint256 number = _reg(s, REG_A7);
        if (number == ECALL_WRITE) return _ecallWrite(s);
        if (number == ECALL_EXIT || number == ECALL_EXIT_GROUP) return _ecallExit(s);
        if (number == ECALL_READ_CHUNK) return _ecallReadChunk(s, c);
        if (number == ECALL_WRITE_CHUNK) return _ecallWriteChunk(s, c);
        _fault(s, FAULT_UNKNOWN_ECALL);
    }

    /// `write(fd = a0, buf = a1, len = a2)`: `a0 = a2` for fd 1 and 2, `a0 = -9` (EBADF) otherwise.
    function _ecallWrite(uint256 s) private pure {
        uint32 fd = _reg(s, REG_A0);
        _writeReg(s, REG_A0, fd == 1 || fd == 2 ? _reg(s, REG_A2) : EBADF);
        _advance(s);
    }

    /// `exit(code = a0)` and `exit_group`: `status = 1`, `exitCode = a0`, `pc` unchanged.
    function _ecallExit(uint256 s) private pure {
        _setByte(s, OFFSET_STATUS, STATUS_EXITED);
        _setU32(s, OFFSET_EXIT_CODE, _reg(s, REG_A0));
    }

    /// `read_chunk(slot = a0, chunk = a1, dest = a2)`: copies the chunk to the 32 bytes at `dest`,
    /// proven by the input proof, the chunk proof and the memory proof of the leaf at `dest`.
    function _ecallReadChunk(uint256 s, Cursor memory c) private pure {
        uint32 slot = _reg(s, REG_A0);
        uint32 chunkIndex = _reg(s, REG_A1);
        uint32 dest = _reg(s, REG_A2);
        uint32 code = _accessFault(dest, uint32(LEAF_BYTES));
        if (code != 0) return _fault(s, code);
        if (slot >= INPUT_SLOTS) return _fault(s, FAULT_INPUT_OUT_OF_RANGE);
        (uint256 chunkCount, bytes32 dataRoot) = _verifyInputProof(c, _hash(s, OFFSET_INPUT_ROOT), slot);
        if (chunkIndex >= chunkCount) return _fault(s, FAULT_INPUT_OUT_OF_RANGE);
        bytes32 chunk = _verifyChunkProof(c, chunkCount, dataRoot, slot, chunkIndex);
        uint256 proof = _readMemoryProof(c, dest, "memory proof", BadMemoryProof.selector);
        _setHash(s, OFFSET_MEM_ROOT, _rewriteMemoryProof(proof, _hash(s, OFFSET_MEM_ROOT), dest, chunk));
        _advance(s);
    }

    /// `write_chunk(src = a0)`: appends the 32 bytes at `src` to the output accumulator, proven by
    /// the accumulator's preimage and the memory proof of the leaf at `src`.
    function _ecallWriteChunk(uint256 s, Cursor memory c) private pure {
        uint32 src = _reg(s, REG_A0);
        uint32 code = _accessFault(src, uint32(LEAF_BYTES));
        if (code != 0) return _fault(s, code);
        uint256 acc = _verifyAccumulator(c, _hash(s, OFFSET_OUTPUT_ACC));
        if (_u32(acc, 0) >= OUTPUT_CAPACITY) return _fault(s, FAULT_OUTPUT_FULL);
        bytes32 leaf = _verifyMemoryProof(c, _hash(s, OFFSET_MEM_ROOT), src);
        _accumulatorAppend(acc, leaf);
        bytes32 accHash;
        assembly ("memory-safe") {
            accHash := keccak256(acc, ACCUMULATOR_LEN)
        }
        _setHash(s, OFFSET_OUTPUT_ACC, accHash);
        _advance(s);
    }

    // ---- Helpers (Rust's crate::hash and byte reads) -------------------------------------------

    /// The leaf of the memory proof at memory `proof`.
    function _proofLeaf(uint256 proof) private pure returns (bytes32 leaf) {
        assembly ("memory-safe") {
            leaf := mload(proof)
        }
    }

    /// The root of a `depth`-level path at memory `path` for `leaf` at `index`.
    function _rootFromPath(bytes32 leaf, uint256 index, uint256 path, uint256 depth)
        private
        pure
        returns (bytes32 node)
    {
        assembly ("memory-safe") {
            node := leaf
            for { let h := 0 } lt(h, depth) { h := add(h, 1) } {
                let sibling := mload(add(path, shl(5, h)))
                switch and(shr(h, index), 1)
                case 0 {
                    mstore(0, node)
                    mstore(0x20, sibling)
                }
                default {
                    mstore(0, sibling)
                    mstore(0x20, node)
                }
                node := keccak256(0, 0x40)
            }
        }
    }

    /// `width` bytes of `leaf` from byte `o` on, read little-endian.
    function _leWord(bytes32 leaf, uint256 o, uint256 width) private pure returns (uint32 v) {
        uint256 w = uint256(leaf);
        for (uint256 k = 0; k < width; k++) {
            v |= uint32((w >> (8 * (31 - o - k))) & 0xff) << uint32(8 * k);
        }
    }

    /// `leaf` with its `width` bytes from byte `o` on replaced by the low bytes of `value`,
    /// little-endian.
    function _leSetWord(bytes32 leaf, uint256 o, uint256 width, uint256 value) private pure returns (bytes32) {
        uint256 w = uint256(leaf);
        for (uint256 k = 0; k < width; k++) {
            uint256 shift = 8 * (31 - o - k);
            w = (w & ~(uint256(0xff) << shift)) | (((value >> (8 * k)) & 0xff) << shift);
        }
        return bytes32(w);
    }

    /// Sign-extends the low `bits` bits of `v` to 32 bits.
    function _sext(uint32 v, uint32 bits) private pure returns (uint32) {
        uint32 unused = 32 - bits;
        return uint32(int32(v << unused) >> unused);
    }

    /// `ceil(log2(n))` for `n >= 1`.
    function _ceilLog2(uint256 n) private pure returns (uint256 d) {
        while ((uint256(1) << d) < n) d++;
    }
}
