// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

// The byte layouts of the opml machine that more than one contract reads (Step, NodeVm,
// DisputeGame), written once: docs/protocol.md sections 1 and 2, the same names as in
// vm/src/verify.rs. File-level constants, so that importing them adds no contract. Inline assembly
// only takes constants whose value is a plain number, so the ones it uses are written out, with the
// expression they stand for beside them.

// ---- State encoding (protocol section 2): 237 bytes, big-endian fields -------------------------

uint256 constant STATE_LEN = 237;
uint256 constant OFFSET_PC = 0;
// x1..x31, 4 bytes each (x0 is not stored): register r sits at OFFSET_REGS + 4 * (r - 1).
uint256 constant OFFSET_REGS = 4;
uint256 constant OFFSET_MEM_ROOT = 128;
uint256 constant OFFSET_STEP = 160;
uint256 constant OFFSET_STATUS = 168;
uint256 constant OFFSET_EXIT_CODE = 169;
uint256 constant OFFSET_INPUT_ROOT = 173;
uint256 constant OFFSET_OUTPUT_ACC = 205;

// Status values (section 2).
uint256 constant STATUS_RUNNING = 0;
uint256 constant STATUS_EXITED = 1;
uint256 constant STATUS_FAULTED = 2;

// ---- Trees (protocol section 1) -----------------------------------------------------------------

// Leaf size of every tree, in bytes.
uint256 constant LEAF_BYTES = 32;
// Height of the memory tree: 2^27 leaves of 32 bytes cover the 2^32-byte address space.
uint256 constant MEMORY_DEPTH = 27;
// Depth of the input tree and its number of slots (section 1.4).
uint256 constant INPUT_DEPTH = 4;
uint256 constant INPUT_SLOTS = 16; // 1 << INPUT_DEPTH
// Height of the output accumulator and its encoding `count (4 bytes) ‖ frontier[0..27]` (section 1.5).
uint256 constant OUTPUT_DEPTH = 27;
uint256 constant OFFSET_FRONTIER = 4;
uint256 constant ACCUMULATOR_LEN = 868; // OFFSET_FRONTIER + 32 * OUTPUT_DEPTH
