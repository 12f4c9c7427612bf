//! The outside figures that `opml bench report` sets its own measurements beside: committed
//! constants, each with where it comes from and how sure it is. Nothing here is measured; change a
//! figure only with its source.

/// How a figure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Read from the named source.
    Cited,
    /// Worked out from the named source's layout (the arithmetic is in `note`).
    Derived,
    /// A rough figure not re-checked against its source: treat it as an estimate.
    Estimate,
}

impl Status {
    /// The word the report prints.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Status::Cited => "cited",
            Status::Derived => "derived",
            Status::Estimate => "estimate",
        }
    }
}

/// Which of this run's figures an anchor is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compare {
    /// Gas of one step transaction (median over every step of the programs).
    StepGas,
    /// Bytes of one step's witness (median).
    WitnessBytes,
    /// Moves of a whole dispute (rounds of the optimal arity for a 7B-shaped dispute).
    GameDepth,
    /// Nothing of ours: a rule in force.
    Rule,
}

/// One outside figure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anchor {
    /// The system it belongs to.
    pub(crate) system: &'static str,
    /// What it measures.
    pub(crate) what: &'static str,
    /// The figure, with its unit.
    pub(crate) value: &'static str,
    /// Where it comes from (repository and file, or specification).
    pub(crate) source: &'static str,
    pub(crate) status: Status,
    /// How it was read or worked out.
    pub(crate) note: &'static str,
    pub(crate) compare: Compare,
}

/// Every anchor, in the order the report prints them.
pub(crate) const ANCHORS: &[Anchor] = &[
    Anchor {
        system: "asterisc (OP Stack, RISC-V)",
        what: "gas of one step (RISCV.sol)",
        value: "~176k gas",
        source: "github.com/ethereum-optimism/asterisc, rvsol/src/RISCV.sol and its forge tests",
        status: Status::Estimate,
        note: "median over its tests as earlier read for this project (opml bench gas); not re-run here",
        compare: Compare::StepGas,
    },
    Anchor {
        system: "Cartesi (RISC-V)",
        what: "gas of one step",
        value: "~103k gas",
        source: "github.com/cartesi/machine-solidity-step",
        status: Status::Estimate,
        note: "as earlier quoted for this project (opml bench gas); not re-run here",
        compare: Compare::StepGas,
    },
    Anchor {
        system: "Cannon (MIPS32, MIPS.sol)",
        what: "memory proof per accessed word",
        value: "896 bytes (28 × 32)",
        source: "github.com/ethereum-optimism/optimism, packages/contracts-bedrock/src/cannon/MIPS.sol",
        status: Status::Cited,
        note: "32-bit memory in 32-byte leaves: 27 sibling hashes and the leaf",
        compare: Compare::WitnessBytes,
    },
    Anchor {
        system: "Cannon (MIPS64, MIPS64Memory.sol)",
        what: "memory proof per accessed word",
        value: "1920 bytes (60 × 32)",
        source: "github.com/ethereum-optimism/optimism, packages/contracts-bedrock/src/cannon/libraries/MIPS64Memory.sol (MEM_PROOF_LEAF_COUNT = 60)",
        status: Status::Cited,
        note: "64-bit memory in 32-byte leaves: 59 sibling hashes and the leaf",
        compare: Compare::WitnessBytes,
    },
    Anchor {
        system: "asterisc (RISC-V 64)",
        what: "memory proof per accessed word",
        value: "1920 bytes (60 × 32)",
        source: "github.com/ethereum-optimism/asterisc, rvsol/src/RISCV.sol",
        status: Status::Derived,
        note: "the same 64-bit memory tree of 32-byte leaves as MIPS64: 59 siblings and the leaf",
        compare: Compare::WitnessBytes,
    },
    Anchor {
        system: "OP Stack fault dispute game",
        what: "maximum game depth (binary bisection)",
        value: "73 (split depth 30)",
        source: "github.com/ethereum-optimism/optimism, packages/contracts-bedrock/deploy-config/mainnet.json (faultGameMaxDepth, faultGameSplitDepth)",
        status: Status::Cited,
        note: "30 levels over output roots, the rest over the VM trace of one block",
        compare: Compare::GameDepth,
    },
    Anchor {
        system: "Arbitrum BoLD",
        what: "bisection depth over its three levels",
        value: "68 (2^26 blocks, 2^19 big steps, 2^23 small steps)",
        source: "github.com/OffchainLabs/arbitrum-orbit-sdk, src/createRollupPrepareDeploymentParamsConfigDefaults.ts (v3.1: layerZero*EdgeHeight, numBigStepLevel = 1)",
        status: Status::Derived,
        note: "26 + 19 + 23 binary levels from the default edge heights",
        compare: Compare::GameDepth,
    },
    Anchor {
        system: "Ethereum (Prague on)",
        what: "calldata floor (EIP-7623)",
        value: "10 / 40 gas per zero / non-zero byte",
        source: "eips.ethereum.org/EIPS/eip-7623",
        status: Status::Cited,
        note: "a transaction pays at least 21000 + 10 × tokens, a non-zero byte being 4 tokens",
        compare: Compare::Rule,
    },
    Anchor {
        system: "Ethereum (Osaka on)",
        what: "gas cap of one transaction (EIP-7825)",
        value: "2^24 = 16,777,216 gas",
        source: "eips.ethereum.org/EIPS/eip-7825",
        status: Status::Cited,
        note: "bounds the largest move of any game",
        compare: Compare::Rule,
    },
    Anchor {
        system: "qemu-riscv32",
        what: "emulator speed",
        value: "measured in this run (section 4)",
        source: "Debian's qemu-user, when installed",
        status: Status::Cited,
        note: "the same program, the same steps as the VM's figure",
        compare: Compare::Rule,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every anchor names a source, and every figure not read from one says so.
    #[test]
    fn every_anchor_has_a_source_and_a_status() {
        for a in ANCHORS {
            assert!(!a.source.trim().is_empty(), "{}: no source", a.system);
            assert!(!a.value.trim().is_empty(), "{}: no value", a.system);
            if a.status == Status::Estimate {
                assert!(a.value.starts_with('~'), "{}: estimates read ~", a.system);
            }
        }
    }
}
