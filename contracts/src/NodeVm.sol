// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

import {
    ACCUMULATOR_LEN,
    INPUT_SLOTS,
    OFFSET_EXIT_CODE,
    OFFSET_FRONTIER,
    OFFSET_INPUT_ROOT,
    OFFSET_MEM_ROOT,
    OFFSET_OUTPUT_ACC,
    OFFSET_PC,
    OFFSET_STATUS,
    STATE_LEN,
    STATUS_EXITED
} from "./VmLayout.sol";

/// @title NodeVm
/// @notice Links the two dispute phases for one graph node: it builds the node's initial VM state
/// from commitments the chain already has, and checks a claimed final VM state against the node's
/// output commitment.
/// @dev docs/protocol.md sections 1.4, 1.5, 2 and 8. Pure and storage-free, like Step.
contract NodeVm {
    /// More than 16 input slots.
    error TooManySlots(uint256 count);
    /// A state or accumulator encoding has the wrong length.
    error BadLength(string what, uint256 length);
    /// The final state has not exited with code 0 (`status` 1 = exited, 2 = faulted).
    error NotExitedCleanly(uint8 status, uint32 exitCode);
    /// The accumulator does not hash to the final state's outputAcc.
    error BadAccumulator();

    /// Initial stack pointer (x2) of every machine, and where x2 sits in the state encoding.
    uint32 internal constant STACK_TOP = 0x80000000;
    uint256 internal constant OFFSET_SP = 8; // OFFSET_REGS + 4 * (2 - 1)

    /// Hash of the initial state of a kernel run: pc = `entry`, x2 = the stack top, other registers
    /// 0, memory = the kernel image (`kernelRoot`), step 0, running, input slot `i` holding the tensor
    /// whose commitment is `slots[i]` (empty slots 0), and an empty output accumulator.
    function initialStateHash(bytes32 kernelRoot, uint32 entry, bytes32[] calldata slots)
        external
        pure
        returns (bytes32)
    {
        if (slots.length > INPUT_SLOTS) revert TooManySlots(slots.length);
        bytes32 inputRoot = _inputRoot(slots);
        bytes32 emptyAcc = _emptyAccumulatorHash();
        bytes memory s = new bytes(STATE_LEN);
        assembly ("memory-safe") {
            let p := add(s, 32)
            mstore(p, shl(224, entry)) // OFFSET_PC = 0
            mstore(add(p, OFFSET_SP), or(shr(32, shl(32, mload(add(p, OFFSET_SP)))), shl(224, STACK_TOP)))
            mstore(add(p, OFFSET_MEM_ROOT), kernelRoot)
            mstore(add(p, OFFSET_INPUT_ROOT), inputRoot)
            mstore(add(p, OFFSET_OUTPUT_ACC), emptyAcc)
        }
        return keccak256(s);
    }

    /// Checks a final state and its accumulator; returns the state's hash and the commitment of the
    /// output tensor with `header` (its data root from the accumulator, section 1.5).
    function finalOutput(bytes calldata state, bytes calldata accumulator, bytes calldata header)
        external
        pure
        returns (bytes32 stateHash, bytes32 outputCommitment)
    {
        if (state.length != STATE_LEN) revert BadLength("state", state.length);
        if (accumulator.length != ACCUMULATOR_LEN) revert BadLength("accumulator", accumulator.length);
        uint8 status = uint8(state[OFFSET_STATUS]);
        uint32 exitCode = uint32(bytes4(state[OFFSET_EXIT_CODE:OFFSET_INPUT_ROOT]));
        if (status != STATUS_EXITED || exitCode != 0) revert NotExitedCleanly(status, exitCode);
        if (keccak256(accumulator) != bytes32(state[OFFSET_OUTPUT_ACC:STATE_LEN])) {
            revert BadAccumulator();
        }
        stateHash = keccak256(state);
        outputCommitment = keccak256(abi.encodePacked(header, _accumulatorDataRoot(accumulator)));
    }

    /// Merkle root of depth 4 over the 16 slot leaves.
    function _inputRoot(bytes32[] calldata slots) private pure returns (bytes32) {
        bytes32[INPUT_SLOTS] memory level;
        for (uint256 i = 0; i < slots.length; i++) {
            level[i] = slots[i];
        }
        for (uint256 width = INPUT_SLOTS >> 1; width >= 1; width /= 2) {
            for (uint256 i = 0; i < width; i++) {
                level[i] = keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1]));
            }
        }
        return level[0];
    }

    /// Hash of the empty accumulator: 868 zero bytes.
    function _emptyAccumulatorHash() private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            calldatacopy(p, calldatasize(), ACCUMULATOR_LEN) // zeroes: reading past calldata gives 0
            h := keccak256(p, ACCUMULATOR_LEN)
        }
    }

    /// The data root of the chunks an accumulator has taken (protocol section 1.5).
    function _accumulatorDataRoot(bytes calldata acc) private pure returns (bytes32) {
        uint256 count = uint32(bytes4(acc[0:4]));
        if (count == 0) return bytes32(0);
        uint256 d = 0;
        while ((uint256(1) << d) < count) d++;
        if (count == uint256(1) << d) return _frontier(acc, d);
        bytes32 node = bytes32(0);
        bytes32 zero = bytes32(0);
        uint256 size = count;
        for (uint256 h = 0; h < d; h++) {
            node = size & 1 == 1
                ? keccak256(abi.encodePacked(_frontier(acc, h), node))
                : keccak256(abi.encodePacked(node, zero));
            zero = keccak256(abi.encodePacked(zero, zero));
            size >>= 1;
        }
        return node;
    }

    function _frontier(bytes calldata acc, uint256 h) private pure returns (bytes32) {
        return bytes32(acc[4 + 32 * h:36 + 32 * h]);
    }
}
