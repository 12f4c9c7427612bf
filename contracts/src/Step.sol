// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

/// @title Step
/// @notice The one-step verifier of the opml RV32IM machine: given the hash of a pre-state and a step
/// witness, it executes one instruction exactly as the Rust VM does and returns the post-state hash.
/// @dev Follows docs/protocol.md sections 1 to 4 (state encoding, Merkle trees, step semantics,
/// witness layout). Pure and storage-free so that anyone can call it. The 237-byte pre-state is
/// copied from calldata into memory once, updated in place and hashed again, so no field is decoded
/// or re-encoded that the instruction does not touch. Every witness rejection reverts with a custom
/// error named as in the protocol.
contract Step {
    // ---- Errors (protocol section 4) ----------------------------------------------------------

    /// The pre-state does not hash to the pre-state hash, or its status byte is not 0, 1 or 2.
    error BadPreState(string reason);
    /// The witness ends before `what` (which needs `needed` bytes at `offset`), or has bytes left
    /// over after its last part (`needed` is then 0).
    error BadWitnessLength(string what, uint256 offset, uint256 needed, uint256 length);
    /// The leaf holding the instruction at `pc` does not prove against the memory root.
    error BadInstructionProof(uint32 pc);
    /// The leaf holding `addr` does not prove against the memory root.
    error BadMemoryProof(uint32 addr);
    /// The input proof of `slot` is malformed or does not prove against the input root.
    error BadInputProof(uint32 slot, string reason);
    /// Chunk `chunk` of input slot `slot` does not prove against the slot's data root.
    error BadChunkProof(uint32 slot, uint32 chunk);
    /// The output accumulator in the witness does not hash to the state's outputAcc.
    error BadAccumulator();

    // ---- State layout (protocol section 2), byte offsets in the 237-byte encoding -------------

    uint256 internal constant STATE_LEN = 237;
    uint256 internal constant OFF_MEM_ROOT = 128;
    uint256 internal constant OFF_STEP = 160;
    uint256 internal constant OFF_STATUS = 168;
    uint256 internal constant OFF_EXIT_CODE = 169;
    uint256 internal constant OFF_INPUT_ROOT = 173;
    uint256 internal constant OFF_OUTPUT_ACC = 205;

    uint256 internal constant STATUS_EXITED = 1;
    uint256 internal constant STATUS_FAULTED = 2;

    uint256 internal constant MEMORY_DEPTH = 27;
    uint256 internal constant MEMORY_PROOF_LEN = 32 + 32 * 27;
    uint256 internal constant GUARD_END = 0x1000;

    uint256 internal constant INPUT_DEPTH = 4;
    uint256 internal constant INPUT_SLOTS = 16;
    uint256 internal constant MIN_HEADER_LEN = 4;
    uint256 internal constant MAX_HEADER_LEN = 1024;

    uint256 internal constant OUTPUT_DEPTH = 27;
    uint256 internal constant ACCUMULATOR_LEN = 4 + 32 * 27;
    uint256 internal constant OUTPUT_CAPACITY = (1 << 27) - 1;

    // ---- Fault codes (protocol section 3.4) ---------------------------------------------------

    uint32 internal constant FAULT_ILLEGAL_INSTRUCTION = 1;
    uint32 internal constant FAULT_BREAKPOINT = 2;
    uint32 internal constant FAULT_MISALIGNED_FETCH = 3;
    uint32 internal constant FAULT_MISALIGNED_ACCESS = 4;
    uint32 internal constant FAULT_UNMAPPED_ACCESS = 5;
    uint32 internal constant FAULT_UNKNOWN_ECALL = 6;
    uint32 internal constant FAULT_INPUT_OUT_OF_RANGE = 7;
    uint32 internal constant FAULT_OUTPUT_FULL = 8;

    // ---- Ecalls (protocol section 3.3) --------------------------------------------------------

    uint256 internal constant ECALL_WRITE = 64;
    uint256 internal constant ECALL_EXIT = 93;
    uint256 internal constant ECALL_EXIT_GROUP = 94;
    uint256 internal constant ECALL_READ_CHUNK = 0x10000;
    uint256 internal constant ECALL_WRITE_CHUNK = 0x10001;
    uint32 internal constant EBADF = 0xfffffff7;

    uint32 internal constant MASK32 = 0xffffffff;

    /// Where the witness is read: its calldata start, its end, and the next unread byte.
    struct Cursor {
        uint256 start;
        uint256 end;
        uint256 at;
    }

    /// Executes one step. Returns the post-state hash, or reverts when the witness does not prove
    /// what the step needs. A pre-state that has exited or faulted is returned unchanged.
    function step(bytes32 preStateHash, bytes calldata witness) external pure returns (bytes32) {
        uint256 start;
        assembly ("memory-safe") {
            start := witness.offset
        }
        Cursor memory c = Cursor(start, start + witness.length, start);
        uint256 s;
        assembly ("memory-safe") {
            // The state buffer: 237 bytes plus slack, so that 32-byte writes at its end stay inside.
            s := mload(0x40)
            mstore(0x40, add(s, 288))
        }
        uint256 pre = _take(c, STATE_LEN, "pre-state");
        bytes32 hashed;
        assembly ("memory-safe") {
            calldatacopy(s, pre, 237)
            hashed := keccak256(s, 237)
        }
        if (hashed != preStateHash) revert BadPreState("it does not hash to the pre-state hash");
        uint256 status = _byte(s, OFF_STATUS);
        if (status == 0) {
            unchecked {
                // Not reachable in 2^64 steps; wrapping keeps a made-up pre-state from reverting.
                _setU64(s, OFF_STEP, _u64(s, OFF_STEP) + 1);
            }
            _execute(s, c);
        } else if (status > STATUS_FAULTED) {
            revert BadPreState("its status byte is not 0, 1 or 2");
        }
        if (c.at != c.end) {
            revert BadWitnessLength("end of witness", c.at - c.start, 0, c.end - c.start);
        }
        assembly ("memory-safe") {
            hashed := keccak256(s, 237)
        }
        return hashed;
    }

    // ---- Witness reader -----------------------------------------------------------------------

    /// Takes the next `n` witness bytes; returns their calldata offset.
    function _take(Cursor memory c, uint256 n, string memory what) private pure returns (uint256 at) {
        at = c.at;
        if (c.end - at < n) revert BadWitnessLength(what, at - c.start, n, c.end - c.start);
        c.at = at + n;
    }

    // ---- State fields in memory ---------------------------------------------------------------

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

    /// Register `r` (x0 reads 0); x1..x31 sit at offsets 4..124.
    function _reg(uint256 s, uint256 r) private pure returns (uint32) {
        return r == 0 ? 0 : _u32(s, r << 2);
    }

    function _setReg(uint256 s, uint256 r, uint32 v) private pure {
        if (r != 0) _setU32(s, r << 2, v);
    }

    function _pc(uint256 s) private pure returns (uint32) {
        return _u32(s, 0);
    }

    function _advance(uint256 s) private pure {
        unchecked {
            _setU32(s, 0, _u32(s, 0) + 4);
        }
    }

    function _fault(uint256 s, uint32 code) private pure {
        assembly ("memory-safe") {
            mstore8(add(s, 168), 2)
        }
        _setU32(s, OFF_EXIT_CODE, code);
    }

    // ---- Step (protocol section 3) ------------------------------------------------------------

    function _execute(uint256 s, Cursor memory c) private pure {
        uint32 pc = _pc(s);
        if (pc & 3 != 0) return _fault(s, FAULT_MISALIGNED_FETCH);
        if (pc < GUARD_END) return _fault(s, FAULT_UNMAPPED_ACCESS);
        uint256 proof = _take(c, MEMORY_PROOF_LEN, "instruction proof");
        (bytes32 leaf, bytes32 root) = _leafAndRoot(proof, pc);
        if (root != _hash(s, OFF_MEM_ROOT)) revert BadInstructionProof(pc);
        uint32 insn = _leWord(leaf, pc & 31, 4);
        if (insn & 3 != 3) return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        uint32 op = insn & 0x7f;
        if (op == 0x33) return _op(s, insn);
        if (op == 0x13) return _opImm(s, insn);
        if (op == 0x03) return _load(s, c, insn);
        if (op == 0x23) return _store(s, c, insn);
        if (op == 0x63) return _branch(s, insn);
        if (op == 0x37) {
            _setReg(s, _rd(insn), insn & 0xfffff000);
            return _advance(s);
        }
        if (op == 0x17) {
            unchecked {
                _setReg(s, _rd(insn), pc + (insn & 0xfffff000));
            }
            return _advance(s);
        }
        if (op == 0x6f) return _jal(s, insn);
        if (op == 0x67) return _jalr(s, insn);
        if (op == 0x0f) {
            uint32 f3 = _funct3(insn);
            return f3 <= 1 ? _advance(s) : _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        }
        if (op == 0x73) {
            if (insn == 0x00000073) return _ecall(s, c);
            return _fault(s, insn == 0x00100073 ? FAULT_BREAKPOINT : FAULT_ILLEGAL_INSTRUCTION);
        }
        _fault(s, FAULT_ILLEGAL_INSTRUCTION);
    }

    // ---- Instruction fields -------------------------------------------------------------------

    function _rd(uint32 insn) private pure returns (uint256) {
        return (insn >> 7) & 31;
    }

    function _funct3(uint32 insn) private pure returns (uint32) {
        return (insn >> 12) & 7;
    }

    function _rs1(uint256 s, uint32 insn) private pure returns (uint32) {
        return _reg(s, (insn >> 15) & 31);
    }

    function _rs2(uint256 s, uint32 insn) private pure returns (uint32) {
        return _reg(s, (insn >> 20) & 31);
    }

    /// Sign-extends the low `bits` bits of `v` to 32 bits.
    function _sext(uint32 v, uint32 bits) private pure returns (uint32) {
        uint32 unused = 32 - bits;
        return uint32(int32(v << unused) >> unused);
    }

    function _immI(uint32 insn) private pure returns (uint32) {
        return uint32(uint256(int256(int32(insn)) >> 20));
    }

    function _immS(uint32 insn) private pure returns (uint32) {
        return uint32(uint256(int256(int32(insn)) >> 20)) & 0xffffffe0 | ((insn >> 7) & 0x1f);
    }

    function _immB(uint32 insn) private pure returns (uint32) {
        return uint32(uint256(int256(int32(insn)) >> 19)) & 0xfffff000 | ((insn & 0x80) << 4)
            | ((insn >> 20) & 0x7e0) | ((insn >> 7) & 0x1e);
    }

    function _immJ(uint32 insn) private pure returns (uint32) {
        return uint32(uint256(int256(int32(insn)) >> 11)) & 0xfff00000 | (insn & 0x000ff000)
            | ((insn >> 9) & 0x800) | ((insn >> 20) & 0x7fe);
    }

    // ---- Instruction classes (protocol section 3.2) -------------------------------------------

    function _jal(uint256 s, uint32 insn) private pure {
        uint32 pc = _pc(s);
        unchecked {
            _setReg(s, _rd(insn), pc + 4);
            _setU32(s, 0, pc + _immJ(insn));
        }
    }

    function _jalr(uint256 s, uint32 insn) private pure {
        if (_funct3(insn) != 0) return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        uint32 pc = _pc(s);
        unchecked {
            uint32 target = (_rs1(s, insn) + _immI(insn)) & 0xfffffffe;
            _setReg(s, _rd(insn), pc + 4);
            _setU32(s, 0, target);
        }
    }

    function _branch(uint256 s, uint32 insn) private pure {
        uint32 a = _rs1(s, insn);
        uint32 b = _rs2(s, insn);
        uint32 f3 = _funct3(insn);
        bool taken;
        if (f3 == 0) taken = a == b;
        else if (f3 == 1) taken = a != b;
        else if (f3 == 4) taken = int32(a) < int32(b);
        else if (f3 == 5) taken = int32(a) >= int32(b);
        else if (f3 == 6) taken = a < b;
        else if (f3 == 7) taken = a >= b;
        else return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        if (taken) {
            unchecked {
                _setU32(s, 0, _pc(s) + _immB(insn));
            }
        } else {
            _advance(s);
        }
    }

    /// The fault of a `width`-byte access at `addr`, or 0 when it may proceed.
    function _accessFault(uint32 addr, uint32 width) private pure returns (uint32) {
        if (addr & (width - 1) != 0) return FAULT_MISALIGNED_ACCESS;
        if (addr < GUARD_END) return FAULT_UNMAPPED_ACCESS;
        return 0;
    }

    function _load(uint256 s, Cursor memory c, uint32 insn) private pure {
        uint32 f3 = _funct3(insn);
        if (f3 == 3 || f3 > 5) return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        uint32 width = uint32(1) << (f3 & 3);
        uint32 addr;
        unchecked {
            addr = _rs1(s, insn) + _immI(insn);
        }
        uint32 code = _accessFault(addr, width);
        if (code != 0) return _fault(s, code);
        bytes32 leaf = _provenLeaf(s, c, addr);
        uint32 value = _leWord(leaf, addr & 31, width);
        if (f3 < 2) value = _sext(value, width * 8);
        _setReg(s, _rd(insn), value);
        _advance(s);
    }

    function _store(uint256 s, Cursor memory c, uint32 insn) private pure {
        uint32 f3 = _funct3(insn);
        if (f3 > 2) return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        uint32 width = uint32(1) << f3;
        uint32 addr;
        unchecked {
            addr = _rs1(s, insn) + _immS(insn);
        }
        uint32 code = _accessFault(addr, width);
        if (code != 0) return _fault(s, code);
        uint256 proof = _take(c, MEMORY_PROOF_LEN, "memory proof");
        bytes32 leaf;
        assembly ("memory-safe") {
            leaf := calldataload(proof)
        }
        // The value's bytes, little-endian, laid over the leaf at addr % 32.
        uint256 value = _rs2(s, insn);
        uint256 o = addr & 31;
        uint256 newLeaf = uint256(leaf);
        for (uint256 k = 0; k < width; k++) {
            uint256 shift = 8 * (31 - o - k);
            newLeaf = (newLeaf & ~(uint256(0xff) << shift)) | (((value >> (8 * k)) & 0xff) << shift);
        }
        (bytes32 oldRoot, bytes32 newRoot) = _rootsWithLeaf(proof, addr, bytes32(newLeaf));
        if (oldRoot != _hash(s, OFF_MEM_ROOT)) revert BadMemoryProof(addr);
        _setHash(s, OFF_MEM_ROOT, newRoot);
        _advance(s);
    }

    function _opImm(uint256 s, uint32 insn) private pure {
        uint32 a = _rs1(s, insn);
        uint32 imm = _immI(insn);
        uint32 f3 = _funct3(insn);
        uint32 f7 = insn >> 25;
        uint32 shamt = imm & 31;
        uint32 v;
        if (f3 == 0) {
            unchecked {
                v = a + imm;
            }
        } else if (f3 == 2) {
            v = int32(a) < int32(imm) ? 1 : 0;
        } else if (f3 == 3) {
            v = a < imm ? 1 : 0;
        } else if (f3 == 4) {
            v = a ^ imm;
        } else if (f3 == 6) {
            v = a | imm;
        } else if (f3 == 7) {
            v = a & imm;
        } else if (f3 == 1 && f7 == 0) {
            v = a << shamt;
        } else if (f3 == 5 && f7 == 0) {
            v = a >> shamt;
        } else if (f3 == 5 && f7 == 0x20) {
            v = uint32(int32(a) >> shamt);
        } else {
            return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        }
        _setReg(s, _rd(insn), v);
        _advance(s);
    }

    function _op(uint256 s, uint32 insn) private pure {
        uint32 a = _rs1(s, insn);
        uint32 b = _rs2(s, insn);
        uint32 f3 = _funct3(insn);
        uint32 f7 = insn >> 25;
        uint32 v;
        if (f7 == 1) {
            v = _mext(f3, a, b);
        } else if (f7 == 0) {
            if (f3 == 0) {
                unchecked {
                    v = a + b;
                }
            } else if (f3 == 1) {
                v = a << (b & 31);
            } else if (f3 == 2) {
                v = int32(a) < int32(b) ? 1 : 0;
            } else if (f3 == 3) {
                v = a < b ? 1 : 0;
            } else if (f3 == 4) {
                v = a ^ b;
            } else if (f3 == 5) {
                v = a >> (b & 31);
            } else if (f3 == 6) {
                v = a | b;
            } else {
                v = a & b;
            }
        } else if (f7 == 0x20 && f3 == 0) {
            unchecked {
                v = a - b;
            }
        } else if (f7 == 0x20 && f3 == 5) {
            v = uint32(int32(a) >> (b & 31));
        } else {
            return _fault(s, FAULT_ILLEGAL_INSTRUCTION);
        }
        _setReg(s, _rd(insn), v);
        _advance(s);
    }

    /// The M extension (funct7 = 1), with RISC-V's results for division by zero and overflow.
    function _mext(uint32 f3, uint32 a, uint32 b) private pure returns (uint32) {
        unchecked {
            int256 sa = int256(int32(a));
            int256 sb = int256(int32(b));
            if (f3 == 0) return a * b;
            if (f3 == 1) return uint32(uint256((sa * sb) >> 32));
            if (f3 == 2) return uint32(uint256((sa * int256(uint256(b))) >> 32));
            if (f3 == 3) return uint32((uint256(a) * uint256(b)) >> 32);
            if (f3 == 4) {
                if (b == 0) return MASK32;
                if (a == 0x80000000 && b == MASK32) return a;
                return uint32(int32(sa / sb));
            }
            if (f3 == 5) return b == 0 ? MASK32 : a / b;
            if (f3 == 6) {
                if (b == 0) return a;
                if (a == 0x80000000 && b == MASK32) return 0;
                return uint32(int32(sa % sb));
            }
            return b == 0 ? a : a % b;
        }
    }

    // ---- Ecalls (protocol section 3.3) --------------------------------------------------------

    function _ecall(uint256 s, Cursor memory c) private pure {
        uint256 number = _reg(s, 17);
        if (number == ECALL_WRITE) {
            uint32 fd = _reg(s, 10);
            _setReg(s, 10, fd == 1 || fd == 2 ? _reg(s, 12) : EBADF);
            return _advance(s);
        }
        if (number == ECALL_EXIT || number == ECALL_EXIT_GROUP) {
            assembly ("memory-safe") {
                mstore8(add(s, 168), 1)
            }
            return _setU32(s, OFF_EXIT_CODE, _reg(s, 10));
        }
        if (number == ECALL_READ_CHUNK) return _readChunk(s, c);
        if (number == ECALL_WRITE_CHUNK) return _writeChunk(s, c);
        _fault(s, FAULT_UNKNOWN_ECALL);
    }

    function _readChunk(uint256 s, Cursor memory c) private pure {
        uint32 slot = _reg(s, 10);
        uint32 chunkIndex = _reg(s, 11);
        uint32 dest = _reg(s, 12);
        uint32 code = _accessFault(dest, 32);
        if (code != 0) return _fault(s, code);
        if (slot >= INPUT_SLOTS) return _fault(s, FAULT_INPUT_OUT_OF_RANGE);
        (uint256 chunkCount, bytes32 dataRoot) = _verifyInputProof(s, c, slot);
        if (chunkIndex >= chunkCount) return _fault(s, FAULT_INPUT_OUT_OF_RANGE);
        uint256 chunkAt = _take(c, 32, "input chunk");
        uint256 depth = _ceilLog2(chunkCount);
        uint256 path = _take(c, 32 * depth, "input chunk path");
        bytes32 chunk;
        assembly ("memory-safe") {
            chunk := calldataload(chunkAt)
        }
        if (_rootFromPath(chunk, chunkIndex, path, depth) != dataRoot) revert BadChunkProof(slot, chunkIndex);
        uint256 proof = _take(c, MEMORY_PROOF_LEN, "memory proof");
        (bytes32 oldRoot, bytes32 newRoot) = _rootsWithLeaf(proof, dest, chunk);
        if (oldRoot != _hash(s, OFF_MEM_ROOT)) revert BadMemoryProof(dest);
        _setHash(s, OFF_MEM_ROOT, newRoot);
        _advance(s);
    }

    /// Reads and proves slot `slot`'s input proof; returns its chunk count and data root.
    function _verifyInputProof(uint256 s, Cursor memory c, uint32 slot)
        private
        pure
        returns (uint256 chunkCount, bytes32 dataRoot)
    {
        uint256 lenAt = _take(c, 2, "input proof header length");
        uint256 headerLen;
        assembly ("memory-safe") {
            headerLen := shr(240, calldataload(lenAt))
        }
        bytes32 leaf;
        if (headerLen != 0) {
            if (headerLen < MIN_HEADER_LEN || headerLen > MAX_HEADER_LEN) {
                revert BadInputProof(slot, "header length is not 0 and not in 4..=1024");
            }
            uint256 header = _take(c, headerLen, "input proof header");
            uint256 rootAt = _take(c, 32, "input proof data root");
            uint256 byteLen;
            assembly ("memory-safe") {
                dataRoot := calldataload(rootAt)
                byteLen := shr(224, calldataload(header))
                // header ‖ dataRoot are contiguous in calldata.
                let m := mload(0x40)
                calldatacopy(m, header, add(headerLen, 32))
                leaf := keccak256(m, add(headerLen, 32))
            }
            chunkCount = (byteLen + 31) >> 5;
        }
        uint256 path = _take(c, 32 * INPUT_DEPTH, "input proof slot path");
        if (_rootFromPath(leaf, slot, path, INPUT_DEPTH) != _hash(s, OFF_INPUT_ROOT)) {
            revert BadInputProof(slot, "the slot's leaf does not prove against inputRoot");
        }
    }

    function _writeChunk(uint256 s, Cursor memory c) private pure {
        uint32 src = _reg(s, 10);
        uint32 code = _accessFault(src, 32);
        if (code != 0) return _fault(s, code);
        uint256 accAt = _take(c, ACCUMULATOR_LEN, "output accumulator");
        uint256 acc;
        bytes32 accHash;
        uint256 count;
        assembly ("memory-safe") {
            acc := mload(0x40)
            mstore(0x40, add(acc, 896))
            calldatacopy(acc, accAt, 868)
            accHash := keccak256(acc, 868)
            count := shr(224, mload(acc))
        }
        if (accHash != _hash(s, OFF_OUTPUT_ACC)) revert BadAccumulator();
        if (count >= OUTPUT_CAPACITY) return _fault(s, FAULT_OUTPUT_FULL);
        bytes32 leaf = _provenLeaf(s, c, src);
        assembly ("memory-safe") {
            // Deposit-contract append: climb while the new count's low bits are 0, hashing with the
            // frontier; store the node at the first 1 bit.
            count := add(count, 1)
            mstore(acc, or(shr(32, shl(32, mload(acc))), shl(224, count)))
            let node := leaf
            let size := count
            for { let h := 0 } lt(h, 27) { h := add(h, 1) } {
                let entry := add(acc, add(4, shl(5, h)))
                if and(size, 1) {
                    mstore(entry, node)
                    break
                }
                mstore(0, mload(entry))
                mstore(0x20, node)
                node := keccak256(0, 0x40)
                size := shr(1, size)
            }
            accHash := keccak256(acc, 868)
        }
        _setHash(s, OFF_OUTPUT_ACC, accHash);
        _advance(s);
    }

    // ---- Merkle proofs (protocol sections 1 and 4) --------------------------------------------

    /// Reads a memory proof for `addr`, checks it against the state's memory root, returns the leaf.
    function _provenLeaf(uint256 s, Cursor memory c, uint32 addr) private pure returns (bytes32 leaf) {
        uint256 proof = _take(c, MEMORY_PROOF_LEN, "memory proof");
        bytes32 root;
        (leaf, root) = _leafAndRoot(proof, addr);
        if (root != _hash(s, OFF_MEM_ROOT)) revert BadMemoryProof(addr);
    }

    /// The leaf of the memory proof at calldata `proof` and the root it proves for `addr`.
    function _leafAndRoot(uint256 proof, uint32 addr) private pure returns (bytes32 leaf, bytes32 root) {
        assembly ("memory-safe") {
            leaf := calldataload(proof)
        }
        root = _rootFromPath(leaf, addr >> 5, proof + 32, MEMORY_DEPTH);
    }

    /// The root the memory proof at `proof` gives for its own leaf and for `newLeaf`, in one pass.
    function _rootsWithLeaf(uint256 proof, uint32 addr, bytes32 newLeaf)
        private
        pure
        returns (bytes32 oldRoot, bytes32 newRoot)
    {
        assembly ("memory-safe") {
            oldRoot := calldataload(proof)
            newRoot := newLeaf
            let index := shr(5, addr)
            let path := add(proof, 32)
            for { let h := 0 } lt(h, 27) { h := add(h, 1) } {
                let sibling := calldataload(add(path, shl(5, h)))
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
    }

    /// The root of a `depth`-level path at calldata `path` for `leaf` at `index`.
    function _rootFromPath(bytes32 leaf, uint256 index, uint256 path, uint256 depth)
        private
        pure
        returns (bytes32 node)
    {
        assembly ("memory-safe") {
            node := leaf
            for { let h := 0 } lt(h, depth) { h := add(h, 1) } {
                let sibling := calldataload(add(path, shl(5, h)))
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

    /// `ceil(log2(n))` for `n >= 1`.
    function _ceilLog2(uint256 n) private pure returns (uint256 d) {
        while ((uint256(1) << d) < n) d++;
    }
}
