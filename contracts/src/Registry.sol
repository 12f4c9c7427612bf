// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

import {DataRoot} from "./DataRoot.sol";

/// @title Registry
/// @notice What the dispute game needs to know before any request: the VM kernel image of each op
/// kind (fixed at deployment) and the models that requests may name, each by its commitment.
/// @dev A model is registered from its node leaves and weight commitments (docs/protocol.md section
/// 9); the registry recomputes the model commitment from them, so a registered commitment always has
/// a known graph, and emits the leaves so that bots can rebuild it from logs.
contract Registry {
    /// The memory root and entry point of an op kind's kernel image.
    struct KernelImage {
        bytes32 memRoot;
        uint32 entry;
    }

    /// A registered model.
    struct ModelInfo {
        address owner;
        bytes32 nodesRoot;
        bytes32 weightsRoot;
        bytes32 inputHeaderHash;
        uint32 nodeCount;
        uint32 weightCount;
    }

    /// `kind`'s kernel image, fixed at deployment.
    event KernelRegistered(uint8 indexed kind, bytes32 memRoot, uint32 entry);
    /// A model: its commitment, who registered it, its graph and where its files are.
    event ModelRegistered(
        bytes32 indexed model,
        address indexed owner,
        bytes inputHeader,
        bytes32[] nodeLeaves,
        bytes32[] weightCommitments,
        string uri
    );

    /// The kernel arrays differ in length, or a kind appears twice.
    error BadKernels();
    /// A model needs at least one node.
    error NoNodes();
    /// An input header must hold at least its 4-byte length, the type and the rank.
    error BadInputHeader(uint256 length);
    /// This model commitment is already registered.
    error AlreadyRegistered(bytes32 model);

    mapping(uint8 => KernelImage) private _kernels;
    mapping(bytes32 => ModelInfo) private _models;

    /// Fixes the kernel image of each op kind.
    constructor(uint8[] memory kinds, bytes32[] memory memRoots, uint32[] memory entries) {
        if (kinds.length != memRoots.length || kinds.length != entries.length) revert BadKernels();
        for (uint256 i = 0; i < kinds.length; i++) {
            if (_kernels[kinds[i]].memRoot != bytes32(0) || memRoots[i] == bytes32(0)) revert BadKernels();
            _kernels[kinds[i]] = KernelImage(memRoots[i], entries[i]);
            emit KernelRegistered(kinds[i], memRoots[i], entries[i]);
        }
    }

    /// `kind`'s kernel image (memRoot 0 when the kind has none).
    function kernel(uint8 kind) external view returns (KernelImage memory) {
        return _kernels[kind];
    }

    /// A registered model (owner 0 when none).
    function model(bytes32 commitment) external view returns (ModelInfo memory) {
        return _models[commitment];
    }

    /// Registers a model from its input header, node leaves and weight commitments; returns its
    /// commitment `H(inputHeader ‖ nodesRoot ‖ weightsRoot)`. `uri` says where its files are.
    function registerModel(
        bytes calldata inputHeader,
        bytes32[] calldata nodeLeaves,
        bytes32[] calldata weightCommitments,
        string calldata uri
    ) external returns (bytes32 commitment) {
        if (nodeLeaves.length == 0) revert NoNodes();
        if (inputHeader.length < 6) revert BadInputHeader(inputHeader.length);
        bytes32 nodesRoot = dataRoot(nodeLeaves);
        bytes32 weightsRoot = dataRoot(weightCommitments);
        commitment = keccak256(abi.encodePacked(inputHeader, nodesRoot, weightsRoot));
        if (_models[commitment].owner != address(0)) revert AlreadyRegistered(commitment);
        _models[commitment] = ModelInfo(
            msg.sender, nodesRoot, weightsRoot, keccak256(inputHeader), uint32(nodeLeaves.length),
            uint32(weightCommitments.length)
        );
        emit ModelRegistered(commitment, msg.sender, inputHeader, nodeLeaves, weightCommitments, uri);
    }

    /// The data root (protocol section 1.2) of 32-byte leaves: 0 for none, the leaf for one, else the
    /// Merkle root with the leaves padded by zero leaves to a power of two.
    function dataRoot(bytes32[] calldata leaves) public pure returns (bytes32) {
        return DataRoot.ofLeaves(leaves);
    }
}
