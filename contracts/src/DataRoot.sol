// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

/// @title DataRoot
/// @notice The data root of docs/protocol.md section 1.2, the one Merkle root over 32-byte chunks
/// that tensors, node leaves and weight commitments all use.
library DataRoot {
    /// Root over `leaves`: 0 for none, the leaf for one, else the Merkle root with the leaves padded
    /// by zero leaves to a power of two.
    function ofLeaves(bytes32[] memory leaves) internal pure returns (bytes32) {
        uint256 n = leaves.length;
        if (n == 0) return bytes32(0);
        uint256 width = 1;
        while (width < n) width <<= 1;
        bytes32[] memory level = new bytes32[](width);
        for (uint256 i = 0; i < n; i++) {
            level[i] = leaves[i];
        }
        while (width > 1) {
            width >>= 1;
            for (uint256 i = 0; i < width; i++) {
                level[i] = keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1]));
            }
        }
        return level[0];
    }

    /// Root over the bytes of `data` cut into 32-byte chunks, the last one zero-padded.
    function ofBytes(bytes calldata data) internal pure returns (bytes32) {
        uint256 n = (data.length + 31) / 32;
        bytes32[] memory chunks = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            uint256 end = 32 * i + 32;
            if (end <= data.length) {
                chunks[i] = bytes32(data[32 * i:end]);
            } else {
                chunks[i] = bytes32(bytes.concat(data[32 * i:], new bytes(end - data.length)));
            }
        }
        return ofLeaves(chunks);
    }
}
