// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

/// @title ChainProbe
/// @notice A small contract that exercises what opml's tools need from a chain: storage, value
/// transfers, events with indexed topics, block timestamps and custom-error reverts. The embedded
/// chain's tests run it, and it is a quick check that a JSON-RPC node behaves.
contract ChainProbe {
    /// `from` poked with `value` at `timestamp`.
    event Poked(address indexed from, uint256 indexed value, uint256 timestamp);

    /// `value` is over `limit`.
    error TooLarge(uint256 value, uint256 limit);

    /// Sum of all pokes.
    uint256 public total;

    /// Adds `value` to `total` and emits `Poked`; reverts with `TooLarge` above 1000.
    function poke(uint256 value) external payable {
        if (value > 1000) revert TooLarge(value, 1000);
        total += value;
        emit Poked(msg.sender, value, block.timestamp);
    }

    /// The current block's timestamp.
    function timestamp() external view returns (uint256) {
        return block.timestamp;
    }
}
