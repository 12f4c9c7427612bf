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
// Zero hashes Z[0..27] of the memory tree (section 1: Z[0] = bytes32(0), Z[k+1] = H(Z[k] ‖ Z[k])),
// 32 bytes each: a memory proof leaves out the siblings that are Z of their level (section 4).
// Checked against Rust's `opml_vm::hash::zero_hash` by the differential tests.
bytes constant MEMORY_ZERO_HASHES =
    hex"0000000000000000000000000000000000000000000000000000000000000000"
    hex"ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5"
    hex"b4c11951957c6f8f642c4af61cd6b24640fec6dc7fc607ee8206a99e92410d30"
    hex"21ddb9a356815c3fac1026b6dec5df3124afbadb485c9ba5a3e3398a04b7ba85"
    hex"e58769b32a1beaf1ea27375a44095a0d1fb664ce2dd358e7fcbfb78c26a19344"
    hex"0eb01ebfc9ed27500cd4dfc979272d1f0913cc9f66540d7e8005811109e1cf2d"
    hex"887c22bd8750d34016ac3c66b5ff102dacdd73f6b014e710b51e8022af9a1968"
    hex"ffd70157e48063fc33c97a050f7f640233bf646cc98d9524c6b92bcf3ab56f83"
    hex"9867cc5f7f196b93bae1e27e6320742445d290f2263827498b54fec539f756af"
    hex"cefad4e508c098b9a7e1d8feb19955fb02ba9675585078710969d3440f5054e0"
    hex"f9dc3e7fe016e050eff260334f18a5d4fe391d82092319f5964f2e2eb7c1c3a5"
    hex"f8b13a49e282f609c317a833fb8d976d11517c571d1221a265d25af778ecf892"
    hex"3490c6ceeb450aecdc82e28293031d10c7d73bf85e57bf041a97360aa2c5d99c"
    hex"c1df82d9c4b87413eae2ef048f94b4d3554cea73d92b0f7af96e0271c691e2bb"
    hex"5c67add7c6caf302256adedf7ab114da0acfe870d449a3a489f781d659e8becc"
    hex"da7bce9f4e8618b6bd2f4132ce798cdc7a60e7e1460a7299e3c6342a579626d2"
    hex"2733e50f526ec2fa19a22b31e8ed50f23cd1fdf94c9154ed3a7609a2f1ff981f"
    hex"e1d3b5c807b281e4683cc6d6315cf95b9ade8641defcb32372f1c126e398ef7a"
    hex"5a2dce0a8a7f68bb74560f8f71837c2c2ebbcbf7fffb42ae1896f13f7c7479a0"
    hex"b46a28b6f55540f89444f63de0378e3d121be09e06cc9ded1c20e65876d36aa0"
    hex"c65e9645644786b620e2dd2ad648ddfcbf4a7e5b1a3a4ecfe7f64667a3f0b7e2"
    hex"f4418588ed35a2458cffeb39b93d26f18d2ab13bdce6aee58e7b99359ec2dfd9"
    hex"5a9c16dc00d6ef18b7933a6f8dc65ccb55667138776f7dea101070dc8796e377"
    hex"4df84f40ae0c8229d0d6069e5c8f39a7c299677a09d367fc7b05e3bc380ee652"
    hex"cdc72595f74c7b1043d0e1ffbab734648c838dfb0527d971b602bc216c9619ef"
    hex"0abf5ac974a1ed57f4050aa510dd9c74f508277b39d7973bb2dfccc5eeb0618d"
    hex"b8cd74046ff337f0a7bf2c8e03e10f642c1886798d71806ab1e888d9e5ee87d0";
